"""The released SDKs, each installed once in its own environment under `<repo>/.compat/`.

An environment is reused when its marker file holds exactly the requirements it was
built for; anything else (no marker, other requirements, a half-finished install) is
wiped and rebuilt. A failed install raises: the suite never skips an SDK it could not get.
"""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2] / ".compat"
DRIVERS = Path(__file__).resolve().parent / "drivers"
INSTALL_TIMEOUT = 900  # seconds for one environment, cold


# The `drive` fixture: run an SDK's driver, drive(sdk, **scenario), get what it printed.
Drive = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Sdk:
    """One released SDK: where it lives and how its driver is run."""

    name: str
    language: str  # "python" or "node"
    requirements: tuple[str, ...]
    driver: str  # file name under drivers/
    stream_format: str  # "v1" (whole completion so far per event), "v2" (deltas) or "both"

    @property
    def home(self) -> Path:
        return ROOT / self.name

    def command(self) -> list[str]:
        """The argv that runs this SDK's driver with this SDK installed."""
        if self.language == "python":
            return [str(self.home / "bin" / "python"), str(DRIVERS / self.driver)]
        return ["node", str(DRIVERS / self.driver)]

    def env(self) -> dict[str, str]:
        """Extra environment for the driver process (node finds the SDK through NODE_PATH)."""
        if self.language == "python":
            return {}
        return {"NODE_PATH": str(self.home / "node_modules")}


SDKS = {
    sdk.name: sdk
    for sdk in (
        Sdk("py-0.2.10", "python", ("anthropic==0.2.10",), "py_v1.py", "v1"),
        Sdk("py-0.3.11", "python", ("anthropic==0.3.11", "httpx<0.28"), "py_v2.py", "v2"),
        Sdk("py-0.125.0", "python", ("anthropic==0.125.0",), "py_v2.py", "v2"),
        Sdk("ts-0.4.4", "node", ("@anthropic-ai/sdk@0.4.4",), "ts_v1.cjs", "v1"),
        Sdk("ts-0.137.0", "node", ("@anthropic-ai/sdk@0.137.0",), "ts_v2.cjs", "v2"),
    )
}
# Apps' stream helpers, each driven by its own tests (not by every SDK test): Vercel's
# `ai` reads a raw `fetch` response of either format with AnthropicStream.
VERCEL_AI = Sdk("ai-2.2.37", "node", ("ai@2.2.37",), "vercel_ai.cjs", "both")
# A framework on the Python SDK 0.7: griptape's AnthropicPromptDriver in an Agent.
GRIPTAPE = Sdk(
    "griptape-0.23.2",
    "python",
    # 0.23 imports boto3 at start; its anthropic 0.7 predates httpx 0.28
    ("griptape[drivers-prompt-anthropic]==0.23.2", "boto3<2", "httpx<0.28"),
    "griptape_agent.py",
    "v2",
)
# Bedrock's clients of the legacy API (tests/compat/test_bedrock.py): the SDK's
# AnthropicBedrock now, and the anthropic-bedrock package of 2023 (its 0.3.1 and last).
BEDROCK_SDKS = {
    sdk.name: sdk
    for sdk in (
        Sdk(
            "py-bedrock-0.125.0", "python", ("anthropic[bedrock]==0.125.0",), "py_bedrock.py", "v2"
        ),
        Sdk(
            "anthropic-bedrock-0.3.1",
            "python",
            ("anthropic-bedrock==0.3.1", "httpx<0.28"),
            "py_bedrock.py",
            "v2",
        ),
        Sdk(
            "anthropic-bedrock-0.8.0",
            "python",
            ("anthropic-bedrock==0.8.0", "httpx<0.28"),
            "py_bedrock.py",
            "v2",
        ),
    )
}
# LangChain 0.0.x's `Bedrock` LLM over boto3 (its last 0.0 release).
LANGCHAIN_BEDROCK = Sdk(
    "langchain-0.0.354", "python", ("langchain==0.0.354", "boto3<2"), "langchain_bedrock.py", "v2"
)


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"install step failed ({done.returncode}): {' '.join(argv)}\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )


def ensure(sdk: Sdk) -> Sdk:
    """Install `sdk` into its own environment unless a completed install is already there."""
    marker = sdk.home / ".installed"
    wanted = json.dumps(list(sdk.requirements))
    if marker.exists() and marker.read_text() == wanted:
        return sdk
    shutil.rmtree(sdk.home, ignore_errors=True)
    sdk.home.mkdir(parents=True)
    if sdk.language == "python":
        _run([sys.executable, "-m", "venv", str(sdk.home)])
        _run([str(sdk.home / "bin" / "python"), "-m", "pip", "install", "-q", *sdk.requirements])
    else:
        (sdk.home / "package.json").write_text('{"private": true}\n')
        _run(["npm", "install", "--no-audit", "--no-fund", *sdk.requirements], cwd=sdk.home)
    marker.write_text(wanted)
    return sdk


if __name__ == "__main__":
    for sdk in (*SDKS.values(), VERCEL_AI, GRIPTAPE, *BEDROCK_SDKS.values(), LANGCHAIN_BEDROCK):
        print(sdk.name, ensure(sdk).home, flush=True)
