"""The running system for the compatibility suite: the strict fake Messages API in a
uvicorn thread, the bridge as a real subprocess in front of it, and the released SDKs,
each in its own environment, driven by small client scripts."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.fakes.answers import Received
from tests.fakes.servers import free_port
from tests.fakes.upstream import FakeUpstream

from .envs import SDKS, Drive, Sdk, ensure

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20  # seconds for a server to answer
DRIVER_TIMEOUT = 40  # seconds for one SDK call, install excluded


def _environ(drop: str) -> dict[str, str]:
    """This process's environment without variables that would configure the child."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="session")
def installed() -> dict[str, Sdk]:
    """Every SDK environment, installed on first use (a failed install fails the suite)."""
    return {name: ensure(sdk) for name, sdk in SDKS.items()}


@pytest.fixture(params=list(SDKS))
def sdk(request: pytest.FixtureRequest, installed: dict[str, Sdk]) -> Sdk:
    return installed[request.param]


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[tuple[str, list[Received]]]:
    """The fake Messages API on a free loopback port: its URL and its request log."""
    app = FakeUpstream()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "fake upstream did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.requests
    server.should_exit = True
    thread.join(STARTUP_TIMEOUT)
    sock.close()


@contextlib.contextmanager
def serving_bridge(upstream_url: str, log_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`python -m proxy serve` in front of `upstream_url` with `env`, its output in
    `log_path`; yields its base URL once healthy, and stops it after."""
    port = free_port()
    argv = [sys.executable, "-m", "proxy", "serve", "--upstream-url", upstream_url]
    argv += ["--port", str(port), "--host", "127.0.0.1"]
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, f"bridge exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"bridge not healthy:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def bridge(
    fake_upstream: tuple[str, list[Received]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The bridge, `python -m proxy serve`, in front of the fake; yields its base URL."""
    log_path = tmp_path_factory.mktemp("bridge") / "bridge.log"
    with serving_bridge(fake_upstream[0], log_path, _environ("BRIDGE_")) as url:
        yield url


@pytest.fixture
def received(fake_upstream: tuple[str, list[Received]]) -> list[Received]:
    """The fake's request log, emptied for this test."""
    fake_upstream[1].clear()
    return fake_upstream[1]


def run_driver(bridge: str, sdk: Sdk, **scenario: Any) -> dict[str, Any]:
    """Run an SDK's driver against the bridge at `bridge`; what it printed last."""
    done = subprocess.run(
        [*sdk.command(), bridge, json.dumps(scenario)],
        env={**_environ("ANTHROPIC_"), **sdk.env()},
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{sdk.name} driver failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture
def drive(bridge: str) -> Drive:
    """Run an SDK's driver against the bridge: drive(sdk, stream=..., params=...)."""

    def run(sdk: Sdk, **scenario: Any) -> dict[str, Any]:
        return run_driver(bridge, sdk, **scenario)

    return run
