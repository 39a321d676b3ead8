"""Graceful drain of a real bridge process: SIGTERM lets streams in flight finish intact,
refuses new connections, and stops by the deadline."""

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from tests.fakes.factories import legacy_body
from tests.fakes.raw_client import Connection, head
from tests.fakes.servers import bridge_process, request_body, serving
from tests.fakes.sse import HEAD, delta
from tests.fakes.upstream import gated_upstream

V2 = {"anthropic-version": "2023-06-01"}


async def open_stream(
    client: httpx.AsyncClient, stack: contextlib.AsyncExitStack
) -> tuple[str, AsyncIterator[str]]:
    """Start a v2 stream and read up to its first completion event; return the line reader."""
    response = await stack.enter_async_context(
        client.stream("POST", "/v1/complete", json=legacy_body(stream=True), headers=V2)
    )
    lines = response.aiter_lines()
    while not (line := await anext(lines)).startswith("data:"):
        pass
    completion: str = json.loads(line[5:])["completion"]
    return completion, lines


async def test_sigterm_lets_open_streams_finish_and_refuses_new_connections(tmp_path: Path) -> None:
    """Three streams open at SIGTERM all complete intact; meanwhile new connections are
    refused; the process exits 0 once they are done, well before the deadline."""
    upstream = gated_upstream()
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
                    except httpx.RemoteProtocolError:
                        # Accepted in the instant before the listener closed, then closed
                        # unanswered by the shutdown: also no longer served.
                        break
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


async def test_streams_still_open_at_the_deadline_end_in_an_error(tmp_path: Path) -> None:
    """A stream that outlives drain_timeout ends with an error event (not a bare cut),
    and the process still stops on time."""
    upstream = gated_upstream()
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
            rest = [line async for line in lines]
            assert rest[-3:] == ["event: error", rest[-2], ""]
            assert json.loads(rest[-2][5:])["error"]["type"] == "overloaded_error"
            await asyncio.wait_for(process.wait(), 10)
            assert time.monotonic() - started < 5
        finally:
            upstream.gate.set()


class HoldingUpstream:
    """Holds every call until `gate`: a streamed one after its headers and first event,
    any other before it answers at all. Counts the calls that reached it."""

    def __init__(self) -> None:
        self.arrived = 0
        self.gate = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        self.arrived += 1
        if not (body and json.loads(body).get("stream")):
            await self.gate.wait()
            return  # never answers: the bridge is gone by then
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HEAD + delta("first"), "more_body": True})
        await self.gate.wait()


def shutdown_answer(response: httpx.Response) -> dict[str, Any]:
    """A JSON answer to a call the shutdown cut before it answered: 503, retry elsewhere."""
    assert response.status_code == 503
    assert response.headers["x-should-retry"] == "true"
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


async def read_to_end(response: httpx.Response) -> tuple[list[str], bool]:
    """A stream's lines, and whether it ended cleanly (False: the connection was cut)."""
    lines: list[str] = []
    try:
        async for line in response.aiter_lines():
            lines.append(line)
    except httpx.RemoteProtocolError:
        return lines, False
    return lines, True


@pytest.mark.parametrize("mode", ["translate", "passthrough"])
async def test_calls_cut_at_the_deadline_end_as_the_legacy_api_would(
    tmp_path: Path, mode: str
) -> None:
    """Calls still in flight at the drain deadline end in the legacy envelope: a JSON call
    gets 503 overloaded_error with x-should-retry: true (an SDK retries elsewhere), a
    translated stream its error event (v2) or error line and [DONE] (v1); a relayed body
    already under way is cut, as an upstream cut would. Each call still logs its line,
    no traceback, and every line the process writes is JSON."""
    upstream = HoldingUpstream()
    env = {"BRIDGE_DRAIN_TIMEOUT": "1", "BRIDGE_FORCE_MODE": mode}
    async with serving(upstream) as upstream_url, contextlib.AsyncExitStack() as stack:
        bridge = await stack.enter_async_context(
            bridge_process(upstream_url, tmp_path / "bridge.log", env)
        )
        try:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=bridge.url, timeout=10)
            )
            calls = {
                "json": client.post("/v1/complete", json=legacy_body(), headers=V2),
                "passthrough json": client.get("/v1/models"),
            }
            waiting = {name: asyncio.create_task(call) for name, call in calls.items()}
            streams = {
                name: await stack.enter_async_context(
                    client.stream("POST", path, json=legacy_body(stream=True), headers=headers)
                )
                for name, path, headers in [
                    ("v2 stream", "/v1/complete", V2),
                    ("v1 stream", "/v1/complete", {}),
                    ("passthrough stream", "/v1/messages", V2),
                ]
            }
            async with asyncio.timeout(5):
                while upstream.arrived < 5:  # noqa: ASYNC110 (a count, no event to wait on)
                    await asyncio.sleep(0.01)
            started = time.monotonic()
            bridge.process.send_signal(signal.SIGTERM)
            answers = {name: await task for name, task in waiting.items()}
            ends = {name: await read_to_end(response) for name, response in streams.items()}
            assert await asyncio.wait_for(bridge.process.wait(), 10) == -signal.SIGTERM
            assert time.monotonic() - started < 5  # the deadline is 1 s
        finally:
            upstream.gate.set()

    for name in ("json", "passthrough json"):
        body = shutdown_answer(answers[name])
        assert body["type"] == "error"
        assert body["error"]["type"] == "overloaded_error"
        assert "shutting down" in body["error"]["message"]
    assert streams["passthrough stream"].status_code == 200
    assert not ends["passthrough stream"][1]  # cut, like an upstream cut
    if mode == "translate":
        v2, clean = ends["v2 stream"]
        assert clean
        last = max(i for i, line in enumerate(v2) if line.startswith("event: "))
        assert v2[last] == "event: error"
        error = json.loads(v2[last + 1].removeprefix("data: "))
        assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
        v1, clean = ends["v1 stream"]
        assert clean
        data = [line.removeprefix("data: ") for line in v1 if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        error = json.loads(data[-2])
        assert error["error"]["type"] == "overloaded_error"
        assert error["exception"].startswith("overloaded_error: ")
    else:  # relayed as they came, and cut like an upstream cut
        assert not ends["v2 stream"][1] and not ends["v1 stream"][1]

    text = bridge.log_path.read_text()
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    logged = [line for line in lines if line["event"] in ("complete", "passthrough")]
    assert len(logged) == 5
    assert all(line["error_type"] == "overloaded_error" for line in logged)
    assert sorted(line["status"] for line in logged) == [200, 200, 200, 503, 503]
    assert lines[-1]["event"] == "bridge.stopped"


async def test_readyz_fails_while_draining() -> None:
    """Readiness is 503 once draining; liveness stays 200."""
    app = create_app(Settings(upstream_url="demo:"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        assert (await c.get("/readyz")).json() == {"status": "ready"}
        app.state.readiness.draining = True
        response = await c.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "draining"})
        assert (await c.get("/healthz")).status_code == 200


async def test_a_body_still_arriving_at_the_deadline_gets_503(tmp_path: Path) -> None:
    """A call whose body is still arriving at the drain deadline is answered 503
    overloaded_error with x-should-retry: true, not left to the server's own 500."""
    upstream = HoldingUpstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "b.log", {"BRIDGE_DRAIN_TIMEOUT": "1"}) as bridge,
    ):
        fields = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
        async with Connection.to(bridge.url) as connection:
            await connection.send(head("/v1/complete", "POST", fields), b'{"model": "claude-2.1", ')
            await asyncio.sleep(0.2)  # the head is in: the call is in flight
            bridge.process.send_signal(signal.SIGTERM)
            reply = await connection.reply()
            assert await connection.closed()
        assert await asyncio.wait_for(bridge.process.wait(), 10) == -signal.SIGTERM
    assert reply.status == 503
    assert reply.error(retry=True)["type"] == "overloaded_error"
    lines = [json.loads(line) for line in bridge.log_path.read_text().splitlines()]
    (call,) = [line for line in lines if line["event"] == "complete"]
    assert (call["status"], call["error_type"]) == (503, "overloaded_error")
