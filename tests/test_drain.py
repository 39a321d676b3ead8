"""Graceful drain of a real bridge process: SIGTERM lets streams in flight finish intact,
refuses new connections, and stops by the deadline."""

import asyncio
import contextlib
import json
import signal
import time

import httpx
import pytest

from proxy.app import create_app
from proxy.config import Settings
from tests.factories import legacy_body
from tests.servers import GatedUpstream, bridge_process, serving

V2 = {"anthropic-version": "2023-06-01"}


async def open_stream(client: httpx.AsyncClient, stack):
    """Start a v2 stream and read up to its first completion event; return the line reader."""
    response = await stack.enter_async_context(
        client.stream("POST", "/v1/complete", json=legacy_body(stream=True), headers=V2)
    )
    lines = response.aiter_lines()
    while not (line := await anext(lines)).startswith("data:"):
        pass
    return json.loads(line[5:])["completion"], lines


async def test_sigterm_lets_open_streams_finish_and_refuses_new_connections(tmp_path):
    """Three streams open at SIGTERM all complete intact; meanwhile new connections are
    refused; the process exits 0 once they are done, well before the deadline."""
    upstream = GatedUpstream()
    async with serving(upstream) as upstream_url, contextlib.AsyncExitStack() as stack:
        bridge = await stack.enter_async_context(
            bridge_process(upstream_url, tmp_path / "bridge.log", {"BRIDGE_DRAIN_TIMEOUT": "20"})
        )
        process, url = bridge.process, bridge.url
        try:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            streams = [await open_stream(client, stack) for _ in range(3)]
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while True:
                    try:
                        async with httpx.AsyncClient() as fresh:
                            await fresh.get(url + "/healthz")
                        await asyncio.sleep(0.05)
                    except httpx.ConnectError:
                        break  # the listener is closed
            assert process.returncode is None, "the bridge left before its streams finished"
            started = time.monotonic()
            upstream.gate.set()
            for first, lines in streams:
                events = [json.loads(line[5:]) async for line in lines if line.startswith("data:")]
                text = first + "".join(e["completion"] for e in events)
                assert text == " first second"
                assert events[-1]["stop_reason"] == "stop_sequence"
            # uvicorn re-raises the signal once drained: a clean exit by SIGTERM
            assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGTERM
            assert time.monotonic() - started < 10
        finally:
            upstream.gate.set()
    log = bridge.log()
    events = [line["event"] for line in log]
    assert events[0] == "bridge.starting" and events[-1] == "bridge.stopped"
    assert "bridge.draining" in events
    assert [line["status"] for line in log if line["event"] == "complete"] == [200, 200, 200]


async def test_streams_still_open_at_the_deadline_are_cut(tmp_path):
    """A stream that outlives drain_timeout is cut and the process still stops on time."""
    upstream = GatedUpstream()
    async with serving(upstream) as upstream_url, contextlib.AsyncExitStack() as stack:
        bridge = await stack.enter_async_context(
            bridge_process(upstream_url, tmp_path / "bridge.log", {"BRIDGE_DRAIN_TIMEOUT": "1"})
        )
        process, url = bridge.process, bridge.url
        try:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            _, lines = await open_stream(client, stack)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in lines:
                    pass
            await asyncio.wait_for(process.wait(), 10)
            assert time.monotonic() - started < 5
        finally:
            upstream.gate.set()


async def test_readyz_fails_while_draining():
    """Readiness is 503 once draining; liveness stays 200."""
    app = create_app(Settings(upstream_url="demo:"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        assert (await c.get("/readyz")).json() == {"status": "ready"}
        app.state.readiness.draining = True
        response = await c.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "draining"})
        assert (await c.get("/healthz")).status_code == 200
