"""The bridge on a real uvicorn socket, in front of a real socket upstream: chunks flow as
they are produced, and a client that hangs up closes the upstream request at once."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from tests.fakes.factories import legacy_body
from tests.fakes.servers import free_port, serving
from tests.fakes.upstream import FakeUpstream, gated_upstream

# The `stack` fixture: build(**options) -> (bridge URL, gated upstream).
Build = Callable[..., Awaitable[tuple[str, FakeUpstream]]]


@pytest.fixture
async def stack() -> AsyncIterator[Build]:
    """build(**options) -> (bridge URL, upstream): both served on real loopback sockets."""
    async with contextlib.AsyncExitStack() as servers:

        async def build(**options: Any) -> tuple[str, FakeUpstream]:
            upstream = gated_upstream(**options)
            upstream_url = await servers.enter_async_context(serving(upstream))
            app = create_app(Settings(upstream_url=upstream_url))
            bridge_url = await servers.enter_async_context(serving(app))
            servers.callback(upstream.gate.set)  # first at teardown: a held upstream finishes
            return bridge_url, upstream

        yield build


async def test_chunks_arrive_as_they_are_produced(stack: Build) -> None:
    """The first completion event reaches the client while the upstream is still holding
    the rest: the bridge buffers nothing."""
    bridge, upstream = await stack()
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
        body = legacy_body(stream=True)
        headers = {"anthropic-version": "2023-06-01"}
        async with client.stream("POST", "/v1/complete", json=body, headers=headers) as response:
            lines = response.aiter_lines()
            async with asyncio.timeout(5):
                while not (line := await anext(lines)).startswith("data:"):
                    pass
            assert json.loads(line[5:])["completion"] == " first"
            assert not upstream.gate.is_set()
            upstream.gate.set()
            rest = [line async for line in lines]
    finals = [json.loads(line[5:]) for line in rest if line.startswith("data:")]
    assert [f["completion"] for f in finals] == [" second", ""]


@pytest.mark.parametrize("stream", [True, False])
async def test_client_hangup_while_waiting_closes_upstream(stack: Build, stream: bool) -> None:
    """A client that leaves before the upstream answered: the upstream request is closed
    within a second, stream or not."""
    bridge, upstream = await stack(hold="headers")
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
        request = asyncio.create_task(
            client.post("/v1/complete", json=legacy_body(stream=stream)), name="legacy call"
        )
        await asyncio.wait_for(upstream.called.wait(), 5)
        request.cancel()  # closes the client's connection
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(upstream.closed.wait(), 1)


@pytest.mark.parametrize("version", ["2023-06-01", None])
async def test_client_hangup_mid_stream_closes_upstream(stack: Build, version: str | None) -> None:
    """A client that leaves mid-stream: the upstream request is closed within a second.
    (v2 leaves after its first event; v1 once the stream has begun, as its first line
    waits for the text after the first piece, which the upstream holds.)"""
    bridge, upstream = await stack()
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
        body = legacy_body(stream=True)
        headers = {"anthropic-version": version} if version else {}
        async with client.stream("POST", "/v1/complete", json=body, headers=headers) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            while version and not (await anext(lines)).startswith("data:"):
                pass
    await asyncio.wait_for(upstream.closed.wait(), 1)
    assert not upstream.gate.is_set()


async def cut_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """Promises 100 bytes, sends 4, and hangs up."""
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"100"), (b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})


async def test_passthrough_cut_mid_body_reaches_the_client_cut() -> None:
    """Regression: an upstream cut mid-body escaped as an app error; the client now sees a
    cut body (a protocol error), never a clean end."""
    async with (
        serving(cut_upstream) as upstream_url,
        serving(create_app(Settings(upstream_url=upstream_url))) as bridge,
        httpx.AsyncClient(base_url=bridge, timeout=10) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/v1/files/f/content")
        assert (await client.get("/healthz")).status_code == 200


async def bridge_for(upstream_url: str, **settings: Any) -> AbstractAsyncContextManager[str]:
    return serving(create_app(Settings(upstream_url=upstream_url, **settings)))


async def test_unreachable_upstream_is_a_502() -> None:
    """Nothing listening upstream: 502 api_error, and no x-should-retry (SDKs retry)."""
    closed_port = free_port()
    async with (
        await bridge_for(f"http://127.0.0.1:{closed_port}") as bridge,
        httpx.AsyncClient(base_url=bridge, timeout=10) as client,
    ):
        response = await client.post("/v1/complete", json=legacy_body())
    assert response.status_code == 502
    assert response.json()["error"] == {
        "type": "api_error",
        "message": "upstream unreachable: could not connect",
    }
    assert "x-should-retry" not in response.headers


async def test_upstream_silent_before_headers_is_a_504() -> None:
    """An upstream that accepts but never answers: 504 timeout_error after read_timeout."""
    upstream = gated_upstream("headers")
    async with (
        serving(upstream) as upstream_url,
        await bridge_for(upstream_url, first_byte_timeout=0.3, idle_timeout=0.3) as bridge,
        httpx.AsyncClient(base_url=bridge, timeout=10) as client,
    ):
        response = await client.post("/v1/complete", json=legacy_body())
        upstream.gate.set()
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


async def test_the_first_byte_may_take_longer_than_the_idle_timeout() -> None:
    """A slow first byte is timed by first_byte_timeout alone: an idle_timeout shorter
    than the wait for headers does not cut the call."""
    upstream = gated_upstream("headers")
    async with (
        serving(upstream) as upstream_url,
        await bridge_for(upstream_url, first_byte_timeout=10, idle_timeout=0.2) as bridge,
        httpx.AsyncClient(base_url=bridge, timeout=10) as client,
    ):
        body = legacy_body(stream=True)
        pending = asyncio.create_task(client.post("/v1/complete", json=body))
        await upstream.called.wait()
        await asyncio.sleep(0.6)  # three idle timeouts long
        upstream.gate.set()
        response = await pending
    assert response.status_code == 200
    assert '"completion":" first second","stop_reason":"stop_sequence"' in response.text
    assert response.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("version", ["2023-06-01", None])
async def test_upstream_stalling_mid_stream_ends_with_a_timeout_error(version: str | None) -> None:
    """A stream whose upstream goes silent past read_timeout ends with a timeout error,
    in both formats, after the text already sent."""
    upstream = gated_upstream()
    headers = {"anthropic-version": version} if version else {}
    async with (
        serving(upstream) as upstream_url,
        await bridge_for(upstream_url, first_byte_timeout=0.3, idle_timeout=0.3) as bridge,
        httpx.AsyncClient(base_url=bridge, timeout=10) as client,
    ):
        response = await client.post("/v1/complete", json=legacy_body(stream=True), headers=headers)
        upstream.gate.set()
    assert '"completion":" first"' in response.text
    assert '"type":"timeout_error","message":"upstream sent nothing for 0.3 s"' in response.text
    assert response.text.endswith("data: [DONE]\n\n") is (version is None)


async def test_completed_streams_are_not_logged_as_disconnects(stack: Build) -> None:
    """Regression: a stream read to its end was logged as client_disconnected."""
    bridge, upstream = await stack()
    upstream.gate.set()
    with capture_logs() as logs:
        async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
            for version in ("2023-06-01", "2023-01-01"):
                response = await client.post(
                    "/v1/complete",
                    json=legacy_body(stream=True),
                    headers={"anthropic-version": version},
                )
                assert response.status_code == 200
    lines = [entry for entry in logs if entry["event"] == "complete"]
    assert [line["client_disconnected"] for line in lines] == [False, False]


async def test_no_cookie_jar_between_callers_on_the_real_transport() -> None:
    """Regression: aiohttp's session kept a cookie jar (for host names, not addresses),
    so a cookie the upstream set for one caller went upstream with the next caller's."""
    seen: list[bytes | None] = []

    async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.append(dict(scope["headers"]).get(b"cookie"))
        headers = [(b"set-cookie", b"session=abc; Path=/"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    async with serving(upstream) as upstream_url:
        by_name = upstream_url.replace("127.0.0.1", "localhost")
        async with await bridge_for(by_name) as bridge:
            for key in ("caller-one", "caller-two"):
                async with httpx.AsyncClient(base_url=bridge) as client:
                    await client.get("/v1/models", headers={"x-api-key": key})
    assert seen == [None, None]


async def test_the_real_transport_adds_no_headers_the_client_did_not_send() -> None:
    """aiohttp would add `accept-encoding: gzip, deflate` (then a client that cannot
    decode gets gzip) and its own user agent; the bridge sends neither."""
    seen: list[set[bytes]] = []

    async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.append({name for name, _ in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async with (
        serving(upstream) as upstream_url,
        await bridge_for(upstream_url) as bridge,
        httpx.AsyncClient(base_url=bridge, headers={"x-api-key": "k"}) as client,
    ):
        del client.headers["accept-encoding"]
        del client.headers["user-agent"]
        await client.get("/v1/models")
        await client.post("/v1/complete", json=legacy_body())
    for names in seen:
        assert not names & {b"accept-encoding", b"user-agent"}
    assert len(seen) == 2
