"""Who may read /metrics, and where: behind the key check on the serving port, or with no
key on its own listener (`metrics_port`), which serves nothing else. Real bridge
processes on loopback."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from proxy.cli import main
from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, free_port

KEY = "bridge-issued-client-key"
ENV = {"BRIDGE_CLIENT_KEYS": "env:TEST_CLIENT_KEYS", "TEST_CLIENT_KEYS": KEY}
V2 = {"anthropic-version": "2023-06-01"}
COUNTER = "complete_bridge_requests_total"


def assert_error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == kind


async def test_with_client_keys_metrics_need_a_key_on_the_serving_port(tmp_path: Path) -> None:
    """401 in the legacy envelope without a key or with a wrong one, like every call;
    200 with an issued key (x-api-key or bearer); health and readiness stay open."""
    async with (
        bridge_process("demo:", tmp_path / "bridge.log", env=ENV) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=10) as client,
    ):
        assert_error(await client.get("/metrics"), 401, "authentication_error")
        wrong = await client.get("/metrics", headers={"x-api-key": "guess"})
        assert_error(wrong, 401, "authentication_error")
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        called = await client.post(
            "/v1/complete", json=legacy_body(), headers={**V2, "x-api-key": KEY}
        )
        assert called.status_code == 200
        for auth in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
            scraped = await client.get("/metrics", headers=auth)
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=")
            assert f'{COUNTER}{{arm="primary",format="v2"' in scraped.text


async def test_on_metrics_port_metrics_need_no_key_and_nothing_else_is_served(
    tmp_path: Path,
) -> None:
    """metrics_port serves GET /metrics without a key, and 404 for every other path
    (no /v1/complete, no pass-through); the serving port answers /metrics with 404 (401
    without a key) and serves calls as before."""
    metrics_port = free_port()
    args = ("--metrics-port", str(metrics_port))
    async with (
        bridge_process("demo:", tmp_path / "bridge.log", env=ENV, args=args) as bridge,
        httpx.AsyncClient(timeout=10) as client,
    ):
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        called = await client.post(
            bridge.url + "/v1/complete", json=legacy_body(), headers={**V2, "x-api-key": KEY}
        )
        assert called.status_code == 200
        scraped = await client.get(metrics_url + "/metrics")
        assert scraped.status_code == 200
        assert f'{COUNTER}{{arm="primary",format="v2"' in scraped.text
        assert (await client.head(metrics_url + "/metrics")).status_code == 200

        keyed = {**V2, "x-api-key": KEY}
        complete = await client.post(
            metrics_url + "/v1/complete", json=legacy_body(), headers=keyed
        )
        assert_error(complete, 404, "not_found_error")
        for path in ("/v1/models", "/healthz", "/metrics/", "/"):
            assert_error(
                await client.get(metrics_url + path, headers=keyed), 404, "not_found_error"
            )
        assert_error(await client.post(metrics_url + "/metrics"), 404, "not_found_error")

        on_main = await client.get(bridge.url + "/metrics", headers=keyed)
        assert_error(on_main, 404, "not_found_error")
        assert str(metrics_port) in on_main.json()["error"]["message"]
        assert_error(await client.get(bridge.url + "/metrics"), 401, "authentication_error")
        again = await client.get(metrics_url + "/metrics")
    # The calls refused on the metrics port never reached the bridge's endpoints.
    assert f'{COUNTER}{{arm="primary",format="v2"' in again.text
    lines = [line for line in again.text.splitlines() if line.startswith(COUNTER + "{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 1
    assert not any(event.get("event") == "passthrough" for event in bridge.log())
    starting = next(event for event in bridge.log() if event.get("event") == "bridge.starting")
    assert starting["metrics_port"] == metrics_port


async def test_sigterm_stops_both_listeners(tmp_path: Path) -> None:
    """One server holds both sockets: SIGTERM drains and stops the process, and neither
    port accepts a connection after it."""
    metrics_port = free_port()
    args = ("--metrics-port", str(metrics_port))
    async with bridge_process("demo:", tmp_path / "bridge.log", args=args) as bridge:
        async with httpx.AsyncClient(timeout=10) as client:
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            assert (await client.get(metrics_url)).status_code == 200
        bridge.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bridge.process.wait(), 10)  # well within drain_timeout
        for port in (int(bridge.url.rsplit(":", 1)[1]), metrics_port):
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
    assert any(event.get("event") == "bridge.stopped" for event in bridge.log())


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["--port", "9101", "--metrics-port", "9101"],
            "metrics_port: must differ from port (9101)",
        ),
        (
            ["--metrics-port", "70000"],
            "--metrics-port: expected a port from 1 to 65535, or 0 (off: /metrics on the "
            "serving port), got '70000'",
        ),
    ],
)
def test_a_metrics_port_that_cannot_be_used_stops_serve(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv], {}) == 2
    assert error in capsys.readouterr().err  # one line, JSON or text as the log is


def test_the_environment_variable_and_the_file_set_it_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BRIDGE_METRICS_PORT and the TOML key are checked the same way; check-config says
    where /metrics is served."""
    assert main(["serve"], {"BRIDGE_METRICS_PORT": "x"}) == 2
    assert "BRIDGE_METRICS_PORT: expected a port" in capsys.readouterr().err
    config = tmp_path / "bridge.toml"
    config.write_text("port = 9000\nmetrics_port = 9000\n")
    assert main(["check-config", str(config)], {}) == 2
    assert capsys.readouterr().err.strip() == (
        f"complete-bridge: error: {config}:2: metrics_port: must differ from port (9000)"
    )
    config.write_text("metrics_port = 9090\n")
    assert main(["check-config", str(config)], {}) == 0
    assert "metrics: GET /metrics on port 9090 only, no key" in capsys.readouterr().out
    config.write_text('client_keys = "env:KEYS"\n')
    assert main(["check-config", str(config)], {"KEYS": KEY}) == 0
    assert "metrics: GET /metrics on port 8080, with a client key" in capsys.readouterr().out
