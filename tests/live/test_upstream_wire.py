"""The upstream connection on the wire, through a real bridge process: one caller never
gets another's answer; broken framing and impossible statuses end at once; `Expect:
100-continue` is answered by the bridge; client-address headers never reach upstream.

`KeepAlive` is a raw-socket upstream that keeps connections open between requests, as a
real one does, and records on which connection each request came. A request's tag
(`tag-<name>`, in its path or body) picks the script that answers it; by default a
correct answer whose text is `answer for <name>`.
"""

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fakes.factories import legacy_body
from tests.fakes.fault_answer import message, stream
from tests.fakes.raw_client import Connection as RawConnection
from tests.fakes.raw_client import head as raw_head
from tests.fakes.raw_server import RawServer, chunked, read_request
from tests.fakes.servers import BridgeProcess, bridge_process

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Long timeouts: whatever waits on one of them fails the bound instead of passing late.
SETTINGS = {
    "BRIDGE_FIRST_BYTE_TIMEOUT": "60",
    "BRIDGE_IDLE_TIMEOUT": "60",
    "BRIDGE_RETRIES": "0",
}
BOUND = 5  # seconds: what "at once" may take here
TAG = re.compile(rb"tag-(\w+)")
LOST = "upstream connection lost"


@dataclass
class Connection:
    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the bridge hung up

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def hold(self) -> None:
        """Keep the connection open until the bridge closes it."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass


@dataclass
class Request:
    tag: str
    connection: Connection
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def stream(self) -> bool:
        with contextlib.suppress(ValueError, AttributeError):
            return json.loads(self.body).get("stream") is True
        return False


Script = Callable[[Connection, Request], Awaitable[None]]


def head(status: int, headers: dict[str, str], reason: str = "Fine") -> bytes:
    lines = [f"HTTP/1.1 {status:03d} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_answer(text: str) -> bytes:
    body = message(text)
    return head(200, {"content-type": "application/json", "content-length": str(len(body))}) + body


def stream_events(text: str) -> bytes:
    return b"".join(stream(text))


STREAM_HEAD = head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"})


def answer_for(request: Request) -> bytes:
    text = f"answer for {request.tag}"
    if request.stream:
        return STREAM_HEAD + chunked(stream_events(text)) + b"0\r\n\r\n"
    return json_answer(text)


async def answer(connection: Connection, request: Request) -> None:
    await connection.send(answer_for(request))


class KeepAlive(RawServer):
    """The upstream: `requests` by tag; `scripts` by tag, set by the tests."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[str, Request] = {}
        self.scripts: dict[str, Script] = {}
        self._numbers = itertools.count()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(next(self._numbers), reader, writer)
        try:
            while not writer.is_closing():
                request = await self._read(connection)
                if request is None:
                    break
                self.requests[request.tag] = request
                await self.scripts.get(request.tag, answer)(connection, request)
        finally:
            connection.closed.set()

    async def _read(self, connection: Connection) -> Request | None:
        request = await read_request(connection.reader)
        if request is None:
            return None  # the bridge closed the connection
        method, target, headers, body = request
        found = TAG.search(target.encode() + body)
        tag = found[1].decode() if found else ""
        return Request(tag, connection, method, target, headers, body)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[KeepAlive]:
    async with KeepAlive() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(
    upstream: KeepAlive, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    """Routes as shipped: /v1/complete is translated, every other path passed through."""
    log = tmp_path_factory.mktemp("wire") / "bridge.log"
    async with bridge_process(upstream.url, log, SETTINGS) as process:
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def forced(
    upstream: KeepAlive, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    """Every /v1/complete passed through as it came (the kill switch)."""
    log = tmp_path_factory.mktemp("wire-forced") / "bridge.log"
    env = {**SETTINGS, "BRIDGE_FORCE_MODE": "passthrough"}
    async with bridge_process(upstream.url, log, env) as process:
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


tags = (f"t{n}" for n in itertools.count())
# How a caller reaches the upstream: translated, passed on by a route, or a path that is
# always passed through.
PATHS = ["translate", "passthrough-route", "passthrough-path"]
# The `via` fixture: the kind of path, the bridge serving it, and build(tag, stream=...)
# making a call on it.
Via = tuple[str, BridgeProcess, Callable[..., httpx.Request]]


@pytest.fixture
def via(request: pytest.FixtureRequest, bridge: BridgeProcess, forced: BridgeProcess) -> Via:
    """The bridge a path is served by, and how a call is made on it."""
    kind = request.param
    process = forced if kind == "passthrough-route" else bridge

    def build(tag: str, *, stream: bool = False) -> httpx.Request:
        url = process.url
        if kind == "passthrough-path":
            return httpx.Request("GET", f"{url}/v1/models?tag=tag-{tag}")
        body = legacy_body(prompt=f"\n\nHuman: tag-{tag}\n\nAssistant:", stream=stream)
        headers = {"x-api-key": "sk-wire", "anthropic-version": "2023-06-01"}
        return httpx.Request("POST", f"{url}/v1/complete", json=body, headers=headers)

    return kind, process, build


def answered(kind: str, response: httpx.Response, tag: str) -> None:
    """The caller got the answer to its own request, and nothing else."""
    assert response.status_code == 200, response.text
    if kind == "translate":
        assert response.json()["completion"] == f" answer for {tag}"
    else:
        assert json.loads(response.content) == json.loads(message(f"answer for {tag}"))


def named(process: BridgeProcess, name: str) -> list[dict[str, Any]]:
    return [line for line in process.log() if line.get("event") == name]


async def next_line(process: BridgeProcess, name: str, seen: int) -> dict[str, Any]:
    """The log line of this name after the `seen` ones (it follows its answer by a moment)."""
    async with asyncio.timeout(BOUND):
        while len(lines := named(process, name)) <= seen:  # noqa: ASYNC110 (a file to poll)
            await asyncio.sleep(0.02)
    return lines[seen]


# ---------------------------------------------------------------------------------------
# 1. One caller never gets another's answer.

STRAY_RESPONSE = json_answer("STRAY: an answer nobody asked for on this connection")
TIMEOUT_408 = head(408, {"content-length": "0", "connection": "close"}, "Request Timeout")
LEFTOVER = b'{"type": "message", "content": [{"type": "text", "text": "LEFTOVER"}]}'


@dataclass(frozen=True)
class Stray:
    """What the upstream writes on B's connection once B's answer is out."""

    data: bytes
    close: bool = False  # then close the connection
    idle: bool = True  # after the bridge is done with B (else: in the same write)
    spoils: bool = False  # B's answer is unreadable with it: B gets a 502, not half of it


STRAYS = {
    "response-while-idle": Stray(STRAY_RESPONSE),
    "408-then-close": Stray(TIMEOUT_408, close=True),
    "leftover-bytes": Stray(LEFTOVER),
    "leftover-head": Stray(b"HTTP/1.1 200 OK\r\ncontent-le"),
    "close-while-idle": Stray(b"", close=True),
    "response-in-same-write": Stray(STRAY_RESPONSE, idle=False),
    "leftover-in-same-write": Stray(LEFTOVER, idle=False, spoils=True),
}


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize("stray", list(STRAYS.values()), ids=list(STRAYS))
async def test_a_stray_on_a_kept_alive_connection_never_answers_the_next_caller(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, stray: Stray
) -> None:
    """B's answer comes on a kept-alive connection, then more bytes or a close that no
    request asked for. The next caller C gets its own answer, sent on a fresh connection;
    stray bytes read while idle are logged (their size, never their content)."""
    kind, process, build = via
    b, c = next(tags), next(tags)
    go, sent = asyncio.Event(), asyncio.Event()

    async def answer_then_stray(connection: Connection, request: Request) -> None:
        if stray.idle:
            await connection.send(answer_for(request))
            await go.wait()  # B's caller has its answer: the connection sits in the pool
            await connection.send(stray.data)
        else:
            await connection.send(answer_for(request) + stray.data)
        if stray.close:
            connection.writer.close()
        sent.set()

    upstream.scripts[b] = answer_then_stray
    async with asyncio.timeout(BOUND):
        response = await client.send(build(b))
        if stray.spoils:
            assert response.status_code == 502, response.text
            assert response.json()["error"] == {"type": "api_error", "message": LOST}
        else:
            answered(kind, response, b)
        seen = len(named(process, "upstream.unsolicited_data"))
        go.set()
        await sent.wait()
        if stray.idle and stray.data:
            line = await next_line(process, "upstream.unsolicited_data", seen)
            assert line["level"] == "warning" and set(line) & {"data", "body", "text"} == set()
        response = await client.send(build(c))
    answered(kind, response, c)
    assert upstream.requests[c].connection is not upstream.requests[b].connection
    assert "STRAY" not in response.text and "LEFTOVER" not in response.text


async def hangup_mid_stream(client: httpx.AsyncClient, request: httpx.Request) -> None:
    response = await client.send(request, stream=True)
    assert response.status_code == 200
    await anext(response.aiter_bytes())
    await response.aclose()


async def stream_whole(client: httpx.AsyncClient, request: httpx.Request) -> None:
    response = await client.send(request)
    assert response.status_code == 200 and "answer for" in response.text


@dataclass(frozen=True)
class Unfinished:
    """An answer the bridge leaves before its end: how the upstream sends B's answer,
    and what B's caller does."""

    script: Script
    caller: Callable[[httpx.AsyncClient, httpx.Request], Awaitable[None]]
    stream: bool = True


async def first_event_then_hold(connection: Connection, request: Request) -> None:
    first = stream_events("first").partition(b"event: content_block_stop")[0]
    await connection.send(STREAM_HEAD + chunked(first))
    await connection.hold()


async def complete_events_then_hold(connection: Connection, request: Request) -> None:
    """The whole stream up to message_stop, but not the chunked body's end."""
    await connection.send(STREAM_HEAD + chunked(stream_events(f"answer for {request.tag}")))
    await connection.hold()


async def half_a_body_then_bad_chunk(connection: Connection, request: Request) -> None:
    """The answer cut short by a broken chunk; the upstream keeps the connection open."""
    body = message(f"answer for {request.tag}")
    json_head = head(200, {"content-type": "application/json", "transfer-encoding": "chunked"})
    await connection.send(json_head + chunked(body[:20]))
    await asyncio.sleep(0.2)  # the bridge has read the head and is reading the body
    await connection.send(b"zz\r\n")
    await connection.hold()


async def cut_caller(client: httpx.AsyncClient, request: httpx.Request) -> None:
    """A translated call gets a 502; a passed-through one, its headers and a cut body."""
    response = await client.send(request, stream=True)
    with contextlib.suppress(httpx.RemoteProtocolError):
        await response.aread()
    await response.aclose()
    assert response.status_code in (200, 502)


UNFINISHED = {
    "client-hangs-up-mid-stream": Unfinished(first_event_then_hold, hangup_mid_stream),
    "stream-done-before-body-end": Unfinished(complete_events_then_hold, stream_whole),
    "answer-cut-short": Unfinished(half_a_body_then_bad_chunk, cut_caller, stream=False),
}


# A pass-through relays a body to its end: a stream done before it leaves nothing unread.
LEFT_UNFINISHED = [
    pytest.param(path, case, id=f"{name}-{path}")
    for name, case in UNFINISHED.items()
    for path in PATHS
    if path == "translate" or case.caller is not stream_whole
]


@pytest.mark.parametrize(("via", "case"), LEFT_UNFINISHED, indirect=["via"])
async def test_an_unfinished_answer_never_returns_its_connection_to_the_pool(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, case: Unfinished
) -> None:
    """The bridge leaves B's answer before its end (the client hung up, the stream was
    done before the body, the body broke): it closes that connection at once, and C goes
    out on another."""
    kind, _, build = via
    b, c = next(tags), next(tags)
    upstream.scripts[b] = case.script
    async with asyncio.timeout(BOUND):
        await case.caller(client, build(b, stream=case.stream))
        while b not in upstream.requests:  # noqa: ASYNC110 (the request is in by now)
            await asyncio.sleep(0.01)
        await upstream.requests[b].connection.closed.wait()
        response = await client.send(build(c))
    answered(kind, response, c)
    assert upstream.requests[c].connection is not upstream.requests[b].connection


# ---------------------------------------------------------------------------------------
# 2. Broken framing and impossible statuses end at once.

CHUNKED_JSON = head(200, {"content-type": "application/json", "transfer-encoding": "chunked"})


def framing_fault(rest: bytes, *, close: bool) -> Script:
    """A chunked answer that starts well; after a moment, `rest` breaks its framing."""

    async def script(connection: Connection, request: Request) -> None:
        await connection.send(CHUNKED_JSON + chunked(b'{"type": "message", '))
        await asyncio.sleep(0.2)  # the bridge is reading the body by now
        await connection.send(rest)
        if close:
            connection.writer.close()
        else:
            await connection.hold()

    return script


FRAMING = {
    "bad-chunk-size-then-close": framing_fault(b"zz\r\n", close=True),
    "bad-chunk-size-held-open": framing_fault(b"zz\r\n", close=False),
    "chunk-size-overflow-held-open": framing_fault(b"f" * 40 + b"\r\n", close=False),
    "chunk-without-crlf-held-open": framing_fault(b"3\r\nabcXY", close=False),
    "truncated-chunk-then-close": framing_fault(b"40\r\nabc", close=True),
    "short-content-length-then-close": lambda connection, request: short_body(connection),
}


async def short_body(connection: Connection) -> None:
    await connection.send(head(200, {"content-type": "application/json", "content-length": "99"}))
    await connection.send(b'{"type": "message", ')
    await asyncio.sleep(0.2)
    connection.writer.close()


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize("script", list(FRAMING.values()), ids=list(FRAMING))
async def test_broken_framing_mid_answer_ends_at_once(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, script: Script
) -> None:
    """A body whose framing breaks (the upstream then closing or holding the connection)
    ends within the bound, not after idle_timeout (60 s here): a translated call with a
    502 api_error "upstream connection lost"; a passed-through one, whose headers are out,
    with a cut body (the client sees it unfinished, never a clean end)."""
    kind, process, build = via
    tag = next(tags)
    upstream.scripts[tag] = script
    seen = len(named(process, "passthrough.upstream_cut"))
    async with asyncio.timeout(BOUND):
        response = await client.send(build(tag), stream=True)
        if kind == "translate":
            await response.aread()
            assert response.status_code == 502
            assert response.json() == {
                "type": "error",
                "error": {"type": "api_error", "message": LOST},
            }
        else:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                await response.aread()
        await response.aclose()
        await upstream.requests[tag].connection.closed.wait()  # and the bridge hung up
    if kind != "translate":
        line = await next_line(process, "passthrough.upstream_cut", seen)
        assert line["error"] == LOST


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize("status", ["600", "999", "000", "101", "199"])
async def test_a_status_that_is_no_final_answer_is_a_502_naming_it(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, status: str
) -> None:
    """A status outside 200-599 as the answer (aiohttp reads past 100-199 but 101, so a
    101, or what follows a 1xx, ends up here) is a 502 api_error naming it, on every path,
    with no traceback in the log."""
    _, process, build = via
    tag = next(tags)

    async def odd_status(connection: Connection, request: Request) -> None:
        if status == "199":  # informational, then a final status outside 100-599
            await connection.send(head(199, {}, "Whatever") + head(600, {"content-length": "0"}))
        else:
            extra = {"upgrade": "websocket", "connection": "upgrade"} if status == "101" else {}
            await connection.send(head(int(status), {"content-length": "2", **extra}) + b"{}")

    upstream.scripts[tag] = odd_status
    shown = "600" if status == "199" else str(int(status))
    async with asyncio.timeout(BOUND):
        response = await client.send(build(tag))
    assert response.status_code == 502
    assert response.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": f"upstream sent unexpected status {shown}"},
    }
    assert "Traceback" not in process.log_path.read_text()


# A status with no body, framed as if it had one (a 304's content-length is legal: the
# representation's).
BODILESS = {
    "304-content-length": head(304, {"content-length": "1234"}, "Not Modified"),
    "204-content-length": head(204, {"content-length": "10"}, "No Content"),
    "204-chunked": head(204, {"transfer-encoding": "chunked"}, "No Content"),
}


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize("raw", list(BODILESS.values()), ids=list(BODILESS))
async def test_a_bodiless_status_never_sends_a_body_to_the_client(
    upstream: KeepAlive, via: Via, raw: bytes
) -> None:
    """Passed through, a 204 or 304 goes to the client with no body and no framing
    header; translated, it is a 502 (Messages answers 200 or an error: a bodiless answer
    has no completion). Either way, on the same client connection, the next call gets its
    own answer (a body sent after a 304 would be read as the start of it), and no
    traceback is logged."""
    kind, process, build = via
    first, second = next(tags), next(tags)
    status = int(raw[9:12])

    async def bodiless(connection: Connection, request: Request) -> None:
        await connection.send(raw)

    upstream.scripts[first] = bodiless
    one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=BOUND, limits=one_connection) as client:
        response = await client.send(build(first))
        if kind == "translate":
            assert response.status_code == 502
            error = response.json()["error"]
            assert error == {
                "type": "api_error",
                "message": f"upstream sent unexpected status {status}",
            }
        else:
            assert response.status_code == status
            assert response.content == b""
            assert "content-length" not in response.headers
            assert "transfer-encoding" not in response.headers
        answered(kind, await client.send(build(second)), second)
    assert "Traceback" not in process.log_path.read_text()


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize(
    "header", [b"x-a: a\x01b", b"x-a: a\x7fb", b"content-length : 2", b"x-a: a\x1bb"], ids=repr
)
async def test_a_header_no_client_may_get_is_a_502(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, header: bytes
) -> None:
    """An answer with a header that is not valid HTTP (the upstream client reads it, the
    server would refuse to write it mid-response) is a 502 api_error on every path."""
    _, process, build = via
    tag = next(tags)

    async def bad_header(connection: Connection, request: Request) -> None:
        await connection.send(b"HTTP/1.1 200 OK\r\n" + header + b"\r\nconnection: close\r\n\r\n{}")
        connection.writer.close()  # the body ends with the connection (or at its length)

    upstream.scripts[tag] = bad_header
    async with asyncio.timeout(BOUND):
        response = await client.send(build(tag))
    assert response.status_code == 502
    assert response.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream sent a header that is not valid HTTP"},
    }
    assert "Traceback" not in process.log_path.read_text()


@pytest.mark.parametrize("via", PATHS, indirect=True)
@pytest.mark.parametrize("informational", ["100 Continue", "103 Early Hints"])
async def test_informational_answers_are_read_past(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via, informational: str
) -> None:
    """A 1xx the bridge did not ask for, then the answer: the caller gets the answer."""
    kind, _, build = via
    tag = next(tags)

    async def early(connection: Connection, request: Request) -> None:
        status, reason = informational.split(" ", 1)
        await connection.send(head(int(status), {"link": "</x>"}, reason) + answer_for(request))

    upstream.scripts[tag] = early
    async with asyncio.timeout(BOUND):
        answered(kind, await client.send(build(tag)), tag)


async def expecting_continue(url: str, path: str, body: bytes) -> tuple[bytes, bytes]:
    """A raw client that sends `Expect: 100-continue` and its body only once it has the
    `100 Continue`, as curl does; returns (the interim answer, the final one)."""
    fields = [
        (b"content-type", b"application/json"),
        (b"x-api-key", b"sk-wire"),
        (b"anthropic-version", b"2023-06-01"),
        (b"content-length", str(len(body)).encode()),
        (b"expect", b"100-continue"),
        (b"connection", b"close"),
    ]
    async with RawConnection.to(url) as connection:
        await connection.send(raw_head(path, "POST", fields))
        interim = await connection.reader.readuntil(b"\r\n\r\n")
        await connection.send(body)
        return interim, await connection.reader.read()  # the bridge closes after its answer


@pytest.mark.parametrize("via", PATHS, indirect=True)
async def test_expect_100_continue_is_answered_by_the_bridge(upstream: KeepAlive, via: Via) -> None:
    """A client that waits for `100 Continue` before its body gets it from the bridge at
    once, then its answer; `expect` never goes upstream (which is never waited on for a
    100), and the upstream gets the whole body."""
    kind, process, _ = via
    tag = next(tags)
    if kind == "passthrough-path":
        path = "/v1/messages"
        sent: dict[str, Any] = {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": f"tag-{tag}"}],
        }
    else:
        path = "/v1/complete"
        sent = legacy_body(prompt=f"\n\nHuman: tag-{tag} {'x' * 4000}\n\nAssistant:")
    body = json.dumps(sent).encode()
    async with asyncio.timeout(BOUND):
        interim, final = await expecting_continue(process.url, path, body)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    status_line, _, rest = final.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), final[:500]
    assert f"answer for {tag}".encode() in rest
    received = upstream.requests[tag]
    assert "expect" not in received.headers
    if kind == "translate":
        assert (
            json.loads(received.body)["messages"][0]["content"]
            == sent["prompt"].split("Human: ")[1].split("\n\n")[0]
        )
    else:
        assert json.loads(received.body) == sent


# ---------------------------------------------------------------------------------------
# 3. Client-address headers never reach the upstream.


# Who a caller claims to be, or to be calling for: each name some proxy or CDN trusts.
CLIENT_ADDRESS_FAMILY = [
    "Forwarded", "Via", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
    "x-forwarded", "X-Real-IP", "X-Client-IP", "Client-IP", "True-Client-IP",
    "CF-Connecting-IP", "Fastly-Client-IP", "X-Originating-IP", "X-Cluster-Client-IP",
    "X-Remote-Addr", "X-Remote-IP", "X-Original-Forwarded-For", "X-Envoy-External-Address",
    "CF-Connecting-IPv6", "X-Azure-ClientIP", "X-Azure-SocketIP", "X-AppEngine-User-IP",
    "X-ProxyUser-IP", "WL-Proxy-Client-IP", "Proxy-Client-IP",
    "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Prefix",
]  # fmt: skip


@pytest.mark.parametrize("via", ["passthrough-route", "passthrough-path"], indirect=True)
async def test_no_client_address_header_reaches_the_upstream(
    upstream: KeepAlive, client: httpx.AsyncClient, via: Via
) -> None:
    """Every header of the client-address family (and any `x-forwarded...`) is dropped on
    a pass-through; other headers pass."""
    kind, _, build = via
    tag = next(tags)
    request = build(tag)
    spoofed = {name: "203.0.113.7" for name in CLIENT_ADDRESS_FAMILY}
    request.headers.update({**spoofed, "x-custom": "kept"})
    async with asyncio.timeout(BOUND):
        answered(kind, await client.send(request), tag)
    received = upstream.requests[tag].headers
    assert received["x-custom"] == "kept"
    assert set(received) & {name.lower() for name in CLIENT_ADDRESS_FAMILY} == set()
