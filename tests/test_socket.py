"""The bridge on a real uvicorn socket, in front of a real socket upstream: chunks flow as
they are produced, and a client that hangs up closes the upstream request at once."""

import asyncio
import contextlib
import json

import httpx
import pytest

from proxy.app import create_app
from proxy.config import Settings
from tests.factories import legacy_body
from tests.servers import GatedUpstream, serving


@pytest.fixture
async def stack():
    """build(**options) -> (bridge URL, upstream): both served on real loopback sockets."""
    async with contextlib.AsyncExitStack() as servers:

        async def build(**options):
            upstream = GatedUpstream(**options)
            upstream_url = await servers.enter_async_context(serving(upstream))
            app = create_app(Settings(upstream_url=upstream_url))
            bridge_url = await servers.enter_async_context(serving(app))
            servers.callback(upstream.gate.set)  # first at teardown: a held upstream finishes
            return bridge_url, upstream

        yield build


async def test_chunks_arrive_as_they_are_produced(stack):
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
async def test_client_hangup_while_waiting_closes_upstream(stack, stream):
    """A client that leaves before the upstream answered: the upstream request is closed
    within a second, stream or not."""
    bridge, upstream = await stack(hold_headers=True)
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
        request = asyncio.create_task(
            client.post("/v1/complete", json=legacy_body(stream=stream)), name="legacy call"
        )
        await asyncio.wait_for(upstream.called.wait(), 5)
        request.cancel()  # closes the client's connection
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(upstream.closed.wait(), 1)


async def test_client_hangup_mid_stream_closes_upstream(stack):
    """A client that leaves mid-stream: the upstream request is closed within a second."""
    bridge, upstream = await stack()
    async with httpx.AsyncClient(base_url=bridge, timeout=10) as client:
        body = legacy_body(stream=True)
        async with client.stream("POST", "/v1/complete", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break
    await asyncio.wait_for(upstream.closed.wait(), 1)
    assert not upstream.gate.is_set()


async def cut_upstream(scope, receive, send):
    """Promises 100 bytes, sends 4, and hangs up."""
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"100"), (b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})


async def test_passthrough_cut_mid_body_reaches_the_client_cut():
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
