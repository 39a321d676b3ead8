"""Size limits on what a client sends, on real sockets.

- A request head (request line and headers) over 64 KiB, or with more than 256 fields,
  is answered 431 in the legacy envelope before more than the bound is read (uvicorn
  with httptools reads any amount: proxy/edge/limits.py); a head of exactly the bound is
  served, and the bound is per request on a kept-alive connection.
- A body over max_body_bytes is answered 413 while the client is still sending it,
  declared with content-length or chunked, and never buffered past the limit.
- JSON nested past the parser's depth is a 400. Never a 500, never unbounded memory.

Most tests run the app in this process behind a uvicorn with the bridge's protocol; the
`process` tests run `complete-bridge serve` itself, whose memory can be measured.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
import pytest_asyncio
from starlette.types import ASGIApp, Message, Scope

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.edge.limits import MAX_HEAD_BYTES, MAX_HEADER_FIELDS, BoundedHttpToolsProtocol
from tests.fakes.factories import legacy_body, message
from tests.fakes.loopback import loopback, running
from tests.fakes.raw_client import BOUND, Connection, head
from tests.fakes.servers import BridgeProcess, bridge_process, serving
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = 4096  # max_body_bytes here; the smallest the settings allow is 1024
KEY = "sk-ant-limits-0123456789"
TOO_LARGE = "request headers are larger than 65536 bytes"
TOO_MANY = "request has more than 256 header fields"
BODY_TOO_LARGE = f"request body is larger than the limit of {LIMIT} bytes"


def bounded_serving(app: ASGIApp) -> AbstractAsyncContextManager[str]:
    """Serve `app` as `complete-bridge serve` does: httptools with bounded heads."""
    return serving(app, http=BoundedHttpToolsProtocol)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[str]:
    async with serving(FakeUpstream()) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(upstream: str) -> AsyncIterator[str]:
    """The app, in this process, behind uvicorn with the bridge's protocol."""
    app = create_app(Settings(upstream_url=upstream, max_body_bytes=LIMIT))
    async with bounded_serving(app) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def roomy(upstream: str) -> AsyncIterator[str]:
    """The same with the default body limit, 32 MiB."""
    async with bounded_serving(create_app(Settings(upstream_url=upstream))) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def process(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    """`complete-bridge serve` itself, as deployed."""
    log = tmp_path_factory.mktemp("limits") / "bridge.log"
    async with bridge_process(upstream, log, {"BRIDGE_MAX_BODY_BYTES": str(LIMIT)}) as bridge:
        yield bridge


def head_of_size(size: int) -> bytes:
    """A GET /healthz head of exactly `size` bytes, padded with one header."""
    bare = head(headers=[(b"x-pad", b"")])
    padded = head(headers=[(b"x-pad", b"a" * (size - len(bare)))])
    assert len(padded) == size
    return padded


# --- heads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_head", "message"),
    [
        pytest.param(head(headers=[(b"x-big", b"a" * 100_000)]), TOO_LARGE, id="one-100KB-header"),
        pytest.param(
            head(headers=[(b"x-h%d" % i, b"v" * 400) for i in range(200)]),
            TOO_LARGE,
            id="200-headers-of-400B",
        ),
        pytest.param(
            head(headers=[(b"x-h%d" % i, b"v") for i in range(10_000)]),
            TOO_MANY,
            id="10000-headers",
        ),
        pytest.param(
            head(headers=[(b"a", b"") for _ in range(MAX_HEADER_FIELDS + 1)]),
            TOO_MANY,
            id="257-tiny-headers",
        ),
        pytest.param(head("/v1/models?q=" + "a" * 100_000), TOO_LARGE, id="100KB-URL"),
    ],
)
async def test_oversized_head_is_a_legacy_431_and_the_connection_closes(
    bridge: str, request_head: bytes, message: str
) -> None:
    """Too many header bytes (in one header, many, or the URL) or too many fields: a 431
    `invalid_request_error` with x-should-retry false, then the connection closes."""
    async with Connection.to(bridge) as connection:
        await connection.send(request_head)
        reply = await connection.reply()
        assert reply.status == 431
        assert reply.headers["connection"] == "close"
        assert reply.error() == {"type": "invalid_request_error", "message": message}
        assert await connection.closed()


async def test_the_bound_is_exact(bridge: str) -> None:
    """A head of exactly MAX_HEAD_BYTES is served; one byte more is refused."""
    async with Connection.to(bridge) as connection:
        await connection.send(head_of_size(MAX_HEAD_BYTES))
        assert (await connection.reply()).status == 200
    async with Connection.to(bridge) as connection:
        await connection.send(head_of_size(MAX_HEAD_BYTES + 1))
        assert (await connection.reply()).status == 431


async def test_the_bound_holds_per_request_on_a_kept_alive_connection(bridge: str) -> None:
    """Heads that fit, one after another on one connection, are all served, however much
    they add up to (bodies in between); a head over the bound after them is refused."""
    near = head_of_size(MAX_HEAD_BYTES - 100)
    body = json.dumps(legacy_body()).encode()
    post = head(
        "/v1/complete",
        "POST",
        [(b"x-api-key", KEY.encode()), (b"content-length", str(len(body)).encode())],
    )
    async with Connection.to(bridge) as connection:
        for _ in range(3):
            await connection.send(near)
            assert (await connection.reply()).status == 200
            await connection.send(post + body)
            assert (await connection.reply()).status == 200
        await connection.send(near + near)  # two pipelined: each fits on its own
        assert [(await connection.reply()).status for _ in range(2)] == [200, 200]
        await connection.send(head_of_size(MAX_HEAD_BYTES + 1))
        assert (await connection.reply()).status == 431


async def test_a_body_after_a_refused_head_is_not_read(bridge: str) -> None:
    """A head refused for its fields, its body in the same packet: 431, body ignored."""
    fields = [(b"a", b"")] * (MAX_HEADER_FIELDS + 1) + [(b"content-length", b"5")]
    async with Connection.to(bridge) as connection:
        await connection.send(head("/v1/complete", "POST", fields) + b"hello")
        reply = await connection.reply()
        assert (reply.status, reply.error()["message"]) == (431, TOO_MANY)


async def test_an_oversized_head_pipelined_behind_a_request_closes_the_connection(
    bridge: str,
) -> None:
    """A head over the bound behind a request still being answered on the connection:
    no 431 can be written into the middle of that answer, so the connection closes.
    (Behind a request, in the same read, a head can pass the bound by up to what is left
    of that read: the parser does not say where in a read a request ended.)"""
    body = json.dumps(legacy_body(stream=True)).encode()
    framing = [(b"x-api-key", KEY.encode()), (b"content-length", str(len(body)).encode())]
    async with Connection.to(bridge) as connection:
        request = head("/v1/complete", "POST", framing) + body + head_of_size(200_000)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await connection.send(request)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(BOUND):
                received = await connection.reader.read()
        assert b" 431 " not in received


async def test_a_head_arriving_a_byte_at_a_time_is_bounded_too(bridge: str) -> None:
    """The bound counts bytes as they arrive, not per read."""
    async with Connection.to(bridge) as connection:
        request_head = head_of_size(MAX_HEAD_BYTES + 1)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for start in range(0, len(request_head), 4096):
                await connection.send(request_head[start : start + 4096])
                await asyncio.sleep(0)
        assert (await connection.reply()).status == 431


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(
            b"POST /v1/complete HTTP/1.1\r\ncontent-length: \xb2\r\n\r\n", id="bad-length"
        ),
        pytest.param(b"NOT HTTP\r\n" + b"a" * 100_000, id="garbage-past-the-bound"),
        # refused once the head is in (the app already has the request): no answer before
        *(
            pytest.param(
                b"POST " + path + b" HTTP/1.1\r\ntransfer-encoding: " + coding + b"\r\n\r\n",
                id=f"transfer-encoding-{coding.decode()}-{path.decode()}",
            )
            for coding in (b"gzip", b"xchunked")
            for path in (b"/v1/complete", b"/v1/messages")
        ),
        pytest.param(
            b"POST /v1/complete HTTP/1.1\r\ncontent-length: 5\r\n"
            b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            id="length-and-chunked",
        ),
    ],
)
async def test_malformed_request_is_a_legacy_400(bridge: str, request_head: bytes) -> None:
    """A request the HTTP parser cannot read is refused in the legacy envelope too."""
    async with Connection.to(bridge) as connection:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await connection.send(request_head)
        reply = await connection.reply()
        assert reply.status == 400
        assert reply.error()["type"] == "invalid_request_error"
        assert await connection.closed()


async def test_the_deployed_server_bounds_heads(process: BridgeProcess) -> None:
    """`complete-bridge serve` runs with the bound: 10,000 headers are a 431."""
    async with Connection.to(process.url) as connection:
        await connection.send(head(headers=[(b"x-h%d" % i, b"v") for i in range(10_000)]))
        reply = await connection.reply()
        assert (reply.status, reply.error()["message"]) == (431, TOO_MANY)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def test_an_endless_head_costs_no_memory(process: BridgeProcess) -> None:
    """100 MB of headers: the bridge stops reading at the bound and closes; its memory
    does not grow (uvicorn on its own read all of it, and grew by as much)."""
    before = rss_kib(process.process.pid)
    line = b"x-big: " + b"a" * 1000 + b"\r\n"
    async with Connection.to(process.url) as connection:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await connection.send(head()[:-2])
            for _ in range(100_000):
                await connection.send(line * 10)
        assert connection.sent < 20_000_000, "the bridge kept reading"
    assert rss_kib(process.process.pid) - before < 10_000


# --- bodies -------------------------------------------------------------------------


def complete_head(**framing: str) -> bytes:
    headers = [(b"x-api-key", KEY.encode()), (b"content-type", b"application/json")]
    headers += [(k.replace("_", "-").encode(), v.encode()) for k, v in framing.items()]
    return head("/v1/complete", "POST", headers)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_declared_body_over_the_limit_is_a_413_before_it_is_sent(bridge: str) -> None:
    """content-length says 100 MB: a 413 comes back after 1 KB of it was sent."""
    async with Connection.to(bridge) as connection:
        await connection.send(complete_head(content_length="100000000"), b"{" * 1024)
        reply = await connection.reply()
        assert reply.status == 413
        assert reply.error() == {"type": "request_too_large", "message": BODY_TOO_LARGE}


async def test_chunked_body_over_the_limit_is_a_413_while_it_is_still_coming(bridge: str) -> None:
    """A chunked body with no end: a 413 comes back once the limit is passed, while the
    client has not finished; what follows is read and dropped, not kept, and the
    connection then serves the next request."""
    async with Connection.to(bridge) as connection:
        await connection.send(complete_head(transfer_encoding="chunked"))
        for _ in range(LIMIT // 1024 + 1):
            await connection.send(chunk(b"a" * 1024))
        reply = await connection.reply()  # no last chunk was sent
        assert reply.status == 413
        assert reply.error() == {"type": "request_too_large", "message": BODY_TOO_LARGE}
        await connection.send(*[chunk(b"a" * 60_000)] * 100, b"0\r\n\r\n")
        await connection.send(head())
        assert (await connection.reply()).status == 200


async def test_body_over_the_limit_is_never_buffered(process: BridgeProcess) -> None:
    """On `complete-bridge serve`: 50 MB sent after a 413 leave its memory as it was."""
    async with Connection.to(process.url) as connection:
        await connection.send(complete_head(transfer_encoding="chunked"), chunk(b"a" * 8192))
        assert (await connection.reply()).status == 413
        before = rss_kib(process.process.pid)
        await connection.send(*[chunk(b"a" * 65_536)] * 800, b"0\r\n\r\n", head())
        assert (await connection.reply()).status == 200
    assert rss_kib(process.process.pid) - before < 10_000


@pytest.mark.parametrize("path", ["/v1/complete", "/v1/messages"])
async def test_the_app_stops_reading_a_body_at_the_limit(path: str) -> None:
    """In the app itself: of an endless body, it reads up to the limit and one message
    more, then answers 413 (legacy or pass-through alike)."""
    async with loopback(ok) as url:
        app = create_app(Settings(upstream_url=url, max_body_bytes=LIMIT))
        received = 0
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal received
            received += 1
            return {"type": "http.request", "body": b"a" * 1024, "more_body": True}

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"transfer-encoding", b"chunked"), (b"x-api-key", KEY.encode())],
        }
        async with running(app), asyncio.timeout(BOUND):
            await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert received == LIMIT // 1024 + 1


def ok(request: httpx.Request) -> httpx.Response:
    request.read()
    return httpx.Response(200, json=message())


async def test_passthrough_chunked_body_over_the_limit_is_a_413(process: BridgeProcess) -> None:
    """A pass-through body over the limit is a 413 like a legacy one. Regression: the
    RequestTooLarge raised while the upstream client reads the body came out of aiohttp
    as a lost connection, a 502 `api_error` that SDKs retry."""
    async with Connection.to(process.url) as connection:
        request_head = head("/v1/messages", "POST", [(b"transfer-encoding", b"chunked")])
        await connection.send(request_head, *[chunk(b"a" * 1024)] * (LIMIT // 1024 + 1))
        assert (await connection.reply()).status == 413


async def test_passthrough_declared_body_over_the_limit_is_a_413_before_it_is_sent(
    bridge: str,
) -> None:
    """A pass-through body declared over the limit is refused before it is read, like a
    legacy one. Regression: it was streamed upstream until the limit was crossed."""
    async with Connection.to(bridge) as connection:
        request_head = head("/v1/messages", "POST", [(b"content-length", b"100000000")])
        await connection.send(request_head, b"{" * 1024)
        async with asyncio.timeout(1):  # no answer comes until more is sent
            assert (await connection.reply()).status == 413


# --- JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}")])
@pytest.mark.parametrize("depth", [1025, 100_000])
async def test_deep_json_is_a_legacy_400(
    roomy: str, opening: bytes, closing: bytes, depth: int
) -> None:
    """JSON nested past orjson's 1024 levels, up to 100,000 (a 600 KB body): a legacy 400
    in well under the time bound, and the bridge serves on. Past 10,000 containers the
    body is refused for its number of values before it is parsed."""
    body = opening * depth + b"1" + closing * depth
    async with httpx.AsyncClient(base_url=roomy, timeout=BOUND) as client:
        response = await client.post("/v1/complete", content=body, headers={"x-api-key": KEY})
        assert response.status_code == 400
        assert response.headers["x-should-retry"] == "false"
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        if depth > 10_000:
            assert error["message"].startswith("request body has more than 10000 JSON values")
        else:
            assert error["message"].startswith(
                "request body is not valid JSON: depth limit exceeded"
            )
        assert (await client.get("/healthz")).status_code == 200
