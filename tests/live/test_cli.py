import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from tests.fakes.factories import legacy_body
from tests.fakes.servers import free_port, run_cli


def test_help_answers_questions() -> None:
    """`serve --help` names every option and its environment variable."""
    out = run_cli("serve", "--help").stdout
    for text in (
        "--upstream-url",
        "BRIDGE_UPSTREAM_URL",
        "--port",
        "BRIDGE_PORT",
        "--config",
        "demo:",
        "--header-timeout",
        "BRIDGE_HEADER_TIMEOUT",
        "--body-timeout",
        "BRIDGE_BODY_TIMEOUT",
        "--max-client-connections",
        "BRIDGE_MAX_CLIENT_CONNECTIONS",
    ):
        assert text in out


def test_help_names_the_metrics_port() -> None:
    shown = run_cli("serve", "--help").stdout
    assert "--metrics-port PORT" in shown
    assert "[BRIDGE_METRICS_PORT]" in " ".join(shown.split())


def test_translate_prints_the_messages_request() -> None:
    """`translate` shows the Messages body and what was adapted."""
    body = legacy_body(stop_sequences=["\n", "END"], tags={"x": 1})
    result = run_cli("translate", stdin=json.dumps(body))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["request"]["model"] == "claude-sonnet-4-5"
    assert out["request"]["stop_sequences"] == ["END"]
    assert out["adaptations"] == ["dropped_field:tags", "local_stop"]
    assert out["bridge_enforced_stop_sequences"] == ["\n"]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{", "complete-bridge: error: stdin is not valid JSON"),
        (json.dumps(legacy_body(prompt="x")), "complete-bridge: error: prompt must start with"),
    ],
)
def test_translate_mistakes_exit_2_with_one_line(stdin: str, message: str) -> None:
    """A bad body is one line on stderr and exit 2, no traceback."""
    result = run_cli("translate", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_the_slow_client_flags_are_checked_like_every_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--header-timeout, --body-timeout, --max-client-connections are read and checked
    like every setting, over the environment: a bad one names itself."""
    environ = {"BRIDGE_HEADER_TIMEOUT": "5", "BRIDGE_LOG_FORMAT": "console"}
    argv = ["serve", "--header-timeout", "x", "--body-timeout", "1"]
    assert main(argv, environ) == 2
    assert "--header-timeout: expected a number of seconds above 0, got 'x'" in (
        capsys.readouterr().err
    )
    assert main(["serve", "--max-client-connections", "0"], environ) == 2
    assert "--max-client-connections: expected an integer from 1" in capsys.readouterr().err


def test_bad_setting_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad environment value stops `serve` before it starts, naming the variable, in
    one line of the log's format."""
    expected = "BRIDGE_PORT: expected an integer from 1 to 65535, got 'eighty'"
    environ = {"BRIDGE_PORT": "eighty", "BRIDGE_LOG_FORMAT": "console"}
    assert main(["serve"], environ) == 2
    assert capsys.readouterr().err == f"complete-bridge: error: {expected}\n"
    assert main(["serve"], {**environ, "BRIDGE_LOG_FORMAT": "json"}) == 2
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["event"], entry["level"], entry["error"]) == (
        "bridge.start_failed",
        "error",
        expected,
    )


def test_flag_beats_environment_beats_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Precedence: flags, then BRIDGE_*, then the file; a bad flag is named as a flag."""
    config = tmp_path / "c.toml"
    config.write_text("port = 1\nhost = 'file'\n")
    assert main(["serve", "--config", str(config), "--port", "x"], {"BRIDGE_PORT": "2"}) == 2
    assert "--port: expected" in capsys.readouterr().err
    assert main(["serve", "--upstream-url", "gopher://x"], {"BRIDGE_CONFIG": str(config)}) == 2
    assert "--upstream-url: expected" in capsys.readouterr().err


def test_unknown_flag_exits_2() -> None:
    """argparse's own mistakes also exit 2."""
    result = run_cli("serve", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


def test_precedence_when_all_are_valid(tmp_path: Path) -> None:
    """A flag beats BRIDGE_*, which beats the file, which beats the default."""
    import argparse

    from proxy.cli import load_settings

    config = tmp_path / "c.toml"
    config.write_text("port = 1111\nhost = '10.0.0.1'\nfirst_byte_timeout = 5\n")
    args = argparse.Namespace(config=str(config), upstream_url=None, host=None, port="3333")
    s = load_settings(args, {"BRIDGE_PORT": "2222", "BRIDGE_HOST": "0.0.0.0"})
    assert (s.port, s.host, s.first_byte_timeout, s.upstream_url) == (
        3333,
        "0.0.0.0",
        5.0,
        "https://api.anthropic.com",
    )


def test_serve_runs_a_real_bridge_that_logs_json_without_the_key(tmp_path: Path) -> None:
    """`serve --upstream-url demo:` answers on its port and logs one JSON line per request,
    never the API key."""
    import os
    import time

    import httpx

    port = free_port()
    log_path = tmp_path / "bridge.log"
    log = log_path.open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--upstream-url", "demo:", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    key = "sk-ant-CANARY-serve-test"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "bridge did not start"
                time.sleep(0.05)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/complete",
            json=legacy_body(),
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        )
        assert response.json()["completion"].startswith(" Hello from the complete-bridge demo")
    finally:
        process.terminate()
        process.wait(10)
        log.close()
    text = log_path.read_text()
    assert key not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    # the request's line and the drain's may come in either order: the client has its
    # answer (and sends SIGTERM) before the bridge's request task has quite finished
    assert events[0] == "bridge.starting" and events[-1] == "bridge.stopped"
    assert sorted(events[1:-1]) == ["bridge.draining", "complete", "config.applied"]
    assert next(line for line in lines if line["event"] == "complete")["status"] == 200


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_port_in_use_is_one_line_naming_it_and_exit_2(fmt: str) -> None:
    """A port another process holds stops `serve` with exit 2 and one line (JSON or
    console, per log_format) naming host:port, not uvicorn's [Errno 98] and exit 3."""
    import os
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["BRIDGE_LOG_FORMAT"] = fmt
        result = run_cli("serve", "--upstream-url", "demo:", "--port", str(port), env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    reason = f"cannot listen on 127.0.0.1:{port}: address already in use"
    if fmt == "json":
        entry = json.loads(line)
        assert (entry["event"], entry["level"], entry["error"]) == (
            "bridge.start_failed",
            "error",
            reason,
        )
    else:
        assert line == f"complete-bridge: error: {reason}"


@pytest.mark.parametrize("stdin", ["", "\n", " \t\r\n  \n"])
def test_fingerprint_of_no_key_is_an_error(stdin: str) -> None:
    """An empty or blank stdin has no fingerprint: exit 2 and one line saying so."""
    result = run_cli("fingerprint", stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("complete-bridge: error: no API key on stdin")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_every_line_a_bridge_writes_is_json(tmp_path: Path, stop: signal.Signals) -> None:
    """Across start, a call, refused requests (the bridge's and uvicorn's own) and a
    shutdown by SIGTERM or SIGINT (Ctrl-C: once drained, no KeyboardInterrupt traceback),
    every line on stdout and stderr parses as JSON, and the process ends by the signal."""
    import asyncio

    import httpx

    from tests.fakes.raw_client import Connection
    from tests.fakes.servers import bridge_process

    async with bridge_process("demo:", tmp_path / "bridge.log") as bridge:
        async with httpx.AsyncClient(base_url=bridge.url) as client:
            ok = await client.post("/v1/complete", json=legacy_body())
            bad = await client.post("/v1/complete", content=b"{not json")
        async with Connection.to(bridge.url) as connection:
            await connection.send(b"NOT HTTP\r\n\r\n")  # uvicorn logs this one itself
            refused = await connection.reader.read()
        bridge.process.send_signal(stop)
        assert await asyncio.wait_for(bridge.process.wait(), 10) == -stop
    assert (ok.status_code, bad.status_code) == (200, 400)
    assert refused.startswith(b"HTTP/1.1 400 ")
    lines = [json.loads(line) for line in bridge.log_path.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "bridge.starting" and events[-1] == "bridge.stopped"
    assert {"event": "Invalid HTTP request received.", "logger": "uvicorn.error"}.items() <= next(
        line for line in lines if line.get("logger") == "uvicorn.error"
    ).items()
    assert [line["status"] for line in lines if line["event"] == "complete"] == [200, 400]
