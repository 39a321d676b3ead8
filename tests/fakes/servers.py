"""Real servers on 127.0.0.1 for the tests: uvicorn started and stopped inside a test's
event loop, a real bridge process (and its log), the CLI as a subprocess, a free port."""

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, **options: Any) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; yield its base URL; stop it after.
    `options` go to uvicorn.Config (e.g. `http=` the protocol the bridge serves with)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn test server")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def request_body(receive: Receive) -> bytes:
    """An ASGI request's whole body."""
    raw = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        raw += chunk
        if not message.get("more_body"):
            return raw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BridgeProcess:
    process: asyncio.subprocess.Process
    url: str
    log_path: Path

    def log(self) -> list[dict[str, Any]]:
        """The JSON log lines the bridge wrote so far."""
        text = self.log_path.read_text()
        # Complete lines only: the bridge may be writing the last one as we read.
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log lines of event `name` so far."""
        return [line for line in self.log() if line["event"] == name]

    async def wait_for(self, name: str, count: int = 1, within: float = 5) -> list[dict[str, Any]]:
        """The log lines of event `name`, once there are at least `count` of them."""
        async with asyncio.timeout(within):
            while len(found := self.events(name)) < count:  # noqa: ASYNC110 (a log file)
                await asyncio.sleep(0.02)
        return found


def run_cli(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`complete-bridge ARGS` as an operator runs it, a subprocess: no BRIDGE_* setting
    (nor MISSING_BRIDGE_KEY) from the test's environment, `env` added."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    environ.pop("MISSING_BRIDGE_KEY", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
        cwd=cwd,
    )


def bridge_command(
    upstream_url: str,
    port: int,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command line of `complete-bridge serve` on `port`, and its environment: no
    BRIDGE_* setting from the test's, JSON log lines, `env` added."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    environ.update({"BRIDGE_LOG_FORMAT": "json", **(env or {})})
    command = [sys.executable, "-m", "proxy", "serve", "--upstream-url", upstream_url, *args]
    return [*command, "--port", str(port)], environ


@contextlib.asynccontextmanager
async def bridge_process(
    upstream_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[BridgeProcess]:
    """A real `complete-bridge serve` process on a free loopback port, ready when yielded
    and killed after (if the test has not stopped it). `env` adds BRIDGE_* settings;
    stdout and stderr go to `log_path`. With `tls` (the client's context, trusting the
    bridge's certificate), it serves https and is checked ready over TLS."""
    port = free_port()
    command, environ = bridge_command(upstream_url, port, env, args)
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=log, stderr=subprocess.STDOUT, env=environ
        )
    scheme = "http" if tls is None else "https"
    bridge = BridgeProcess(process, f"{scheme}://127.0.0.1:{port}", log_path)
    try:
        async with asyncio.timeout(15), httpx.AsyncClient(verify=tls or True) as client:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the bridge exited; see {log_path}")
                try:
                    if (await client.get(bridge.url + "/readyz")).status_code == 200:
                        break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        yield bridge
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
