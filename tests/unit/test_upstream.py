import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.errors import BadUpstreamResponse, UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.answer import Answer, answer
from proxy.upstream.client import Upstream
from proxy.upstream.clock import Clock
from proxy.upstream.guards import IdleTimeout, read_capped
from proxy.upstream.headers import (
    RawHeaders,
    passthrough_headers,
    relayed_headers,
    translated_headers,
)
from proxy.upstream.memory import MemoryTransport
from proxy.upstream.network import upstream_error
from proxy.upstream.transport import Request


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (aiohttp.ServerDisconnectedError(), UpstreamUnreachable, "upstream connection lost"),
        (aiohttp.SocketTimeoutError(), UpstreamTimeout, "upstream did not answer in time"),
        (
            aiohttp.ConnectionTimeoutError(),
            UpstreamUnreachable,
            "upstream unreachable: connection timed out",
        ),
        (aiohttp.ClientPayloadError(), UpstreamUnreachable, "upstream connection lost"),
    ],
)
def test_upstream_errors_map_by_what_really_happened(
    exc: aiohttp.ClientError, kind: type[Exception], message: str
) -> None:
    """Unreachable and lost are 502 api_error, too slow is 504 timeout_error."""
    error = upstream_error(exc)
    assert type(error) is kind
    assert error.message == message


def test_translated_headers_forward_only_the_allow_list() -> None:
    """Keys, beta flags and user agent go upstream; the version is always 2023-06-01."""
    raw = [
        (b"x-api-key", b"k"),
        (b"Authorization", b"Bearer t"),
        (b"anthropic-beta", b"b"),
        (b"anthropic-version", b"2023-01-01"),
        (b"cookie", b"c"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"content-length", b"10"),
    ]
    assert translated_headers(raw) == [
        (b"x-api-key", b"k"),
        (b"Authorization", b"Bearer t"),
        (b"anthropic-beta", b"b"),
        (b"anthropic-version", b"2023-06-01"),
        (b"content-type", b"application/json"),
    ]


def test_passthrough_drops_hop_by_hop_and_spoofable_headers() -> None:
    """Hop-by-hop headers (also those `connection` names), Host, and what a client could
    claim about who is calling never cross the bridge."""
    raw = [
        (b"Connection", b"close, X-Secret-Hop"),
        (b"x-secret-hop", b"h"),
        (b"host", b"x"),
        (b"TE", b"trailers"),
        (b"Proxy-Authorization", b"Basic eA=="),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"x-forwarded-host", b"evil.test"),
        (b"Forwarded", b"for=10.0.0.1"),
        (b"x-real-ip", b"10.0.0.1"),
        (b"via", b"1.1 p"),
        (b"x-a", b"1"),
        (b"anthropic-beta", b"b"),
    ]
    assert passthrough_headers(raw) == [(b"x-a", b"1"), (b"anthropic-beta", b"b")]


def test_relayed_headers() -> None:
    """request-id, retry headers and rate-limit headers come back; others do not."""
    response = httpx.Response(
        200,
        headers=[
            (b"request-id", b"r"),
            (b"anthropic-ratelimit-tokens-remaining", b"5"),
            (b"retry-after", b"1"),
            (b"set-cookie", b"s"),
        ],
    )
    assert relayed_headers(response.headers.raw) == [
        (b"request-id", b"r"),
        (b"anthropic-ratelimit-tokens-remaining", b"5"),
        (b"retry-after", b"1"),
    ]


# The layers, through their interfaces: an in-memory transport under each.


def overloaded() -> Answer:
    return answer(529, [(b"retry-after-ms", b"0")], b"{}")


class Script:
    """An in-memory upstream: its answers in turn (one of ours raised), then 200s."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.closed = 0

    async def __call__(self, request: Request) -> Answer:
        self.calls += 1
        if not self.answers:
            return answer(200, [], b"fine")
        given = self.answers.pop(0)
        if isinstance(given, Exception):
            raise given
        close = given.close

        async def counted() -> None:
            self.closed += 1
            await close()

        given.close = counted
        return given


def upstream(script: Script, **settings: Any) -> Upstream:
    return Upstream(Settings(upstream_url="http://up", **settings), MemoryTransport(script))


async def test_the_retry_layer_retries_unreachable_and_overloaded_then_relays() -> None:
    script = Script(overloaded(), UpstreamUnreachable("upstream connection lost"), overloaded())
    with capture_logs() as logs:
        client = upstream(script, retries=3)
        got = await client.send("POST", "/v1/messages", [], b"{}")
    assert (got.status_code, await client.read_all(got)) == (200, b"fine")
    assert (script.calls, script.closed) == (4, 2)  # each answer passed over is closed
    retries = [line for line in logs if line["event"] == "upstream.retry"]
    assert [(r["attempt"], r["after_status"], r["after_error"]) for r in retries] == [
        (1, 529, None),
        (2, None, "upstream connection lost"),
        (3, 529, None),
    ]


@pytest.mark.parametrize(
    "failure", [UpstreamTimeout("upstream did not answer in time"), BadUpstreamResponse("x")]
)
async def test_what_may_have_reached_the_upstream_is_not_retried(failure: Exception) -> None:
    script = Script(failure)
    with pytest.raises(type(failure)):
        await upstream(script, retries=3).send("POST", "/v1/messages", [], b"{}")
    assert script.calls == 1


async def test_a_streamed_body_is_sent_once() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    script = Script(overloaded())
    got = await upstream(script, retries=3).send("POST", "/v1/messages", [], body())
    assert (got.status_code, script.calls) == (529, 1)


async def test_the_budget_allows_its_burst_then_a_share_of_requests() -> None:
    """No budget earned (ratio 0): the burst of ten retries, then each call once."""
    script = Script(*[overloaded() for _ in range(100)])
    client = upstream(script, retries=1, retry_budget=0.0)
    for _ in range(12):
        assert (await client.send("POST", "/", [], b"{}")).status_code == 529
    assert script.calls == 10 * 2 + 2 * 1


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (101, [], "upstream sent unexpected status 101"),
        (600, [], "upstream sent unexpected status 600"),
        (200, [(b"x-bad", b"a\nb")], "upstream sent a header that is not valid HTTP"),
    ],
)
async def test_the_guard_refuses_what_the_client_wire_cannot_carry(
    status: int, headers: RawHeaders, message: str
) -> None:
    script = Script(answer(status, headers))
    with pytest.raises(BadUpstreamResponse, match=message):
        await upstream(script).send("GET", "/", [], b"")
    assert script.closed == 1


async def never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()  # an upstream that goes silent
    yield b""


async def test_no_first_byte_in_time_is_a_timeout() -> None:
    async def silent(request: Request) -> Answer:
        await asyncio.Event().wait()
        raise AssertionError

    client = Upstream(Settings(first_byte_timeout=0), MemoryTransport(silent))
    with pytest.raises(UpstreamTimeout, match="upstream did not answer in time"):
        await client.send("GET", "/", [], b"")


async def test_the_idle_timeout_counts_only_the_upstreams_silence() -> None:
    """With no time at all allowed: chunks already there pass (empty ones left out),
    a wait for the next is a timeout."""

    async def ready() -> AsyncIterator[bytes]:
        for chunk in (b"a", b"", b"b"):
            yield chunk

    assert [chunk async for chunk in IdleTimeout(ready(), 0)] == [b"a", b"b"]
    with pytest.raises(UpstreamTimeout, match="upstream sent nothing for 0 s"):
        await anext(IdleTimeout(never(), 0))


async def test_one_clock_times_each_wait_on_its_own() -> None:
    """The calls of one upstream client share its clock: a wait past its own timeout
    fails, another wait still within its own goes on."""
    clock = Clock()
    gate = asyncio.Event()

    async def late() -> AsyncIterator[bytes]:
        await gate.wait()
        yield b"late"

    async def patient() -> list[bytes]:
        return [chunk async for chunk in IdleTimeout(late(), 3600, clock)]

    waiting = asyncio.create_task(patient())
    await asyncio.sleep(0)  # its wait has begun
    with pytest.raises(UpstreamTimeout, match="upstream sent nothing for 0 s"):
        await anext(IdleTimeout(never(), 0, clock))
    gate.set()
    assert await waiting == [b"late"]


async def test_the_size_cap_holds_the_whole_body() -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 10

    assert await read_capped(body(), 40) == b"x" * 40
    with pytest.raises(BadUpstreamResponse, match="larger than 39 bytes"):
        await read_capped(body(), 39)


async def test_demo_runs_on_the_in_memory_transport() -> None:
    client = Upstream(Settings(upstream_url="demo:"))
    body = b'{"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}'
    got = await client.send("POST", "/v1/messages", [], body)
    assert (got.status_code, got.headers["Request-Id"]) == (200, "req_demo")
    assert b'"text": "Hello from the"' in await client.read_all(got)
    missing = await client.send("GET", "/v1/models", [], b"")
    assert missing.status_code == 404
    await client.aclose()
