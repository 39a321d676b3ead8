"""An httpx-style handler, `(httpx.Request) -> httpx.Response` (or a coroutine of one),
served on a real loopback socket in the test's event loop, so that the bridge reaches it
through its network transport, as in production:

    async with loopback(handler) as url:
        app = create_app(Settings(upstream_url=url))
        async with running(app): ...

The response goes on the wire as the handler made it: its status, its raw headers, and
its body with its content-length, or chunked as the stream yields it, a chunk at a time.
A handler (or its response's stream) that raises makes a fault on the wire instead: an
httpx timeout is an upstream that goes silent; any other httpx transport error drops the
connection where it stands (before the answer, or in the middle of its body). Any other
exception drops it too, and is raised again when the loopback closes: a handler's bug
fails its test.
"""

import asyncio
import inspect
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import httpx
from starlette.applications import Starlette

from tests.fakes.raw_server import RawServer

# Loop turns between the chunks of a body: the bridge's read of one is done before the
# next is written (the socket's bytes are taken in one turn, its reader runs the next).
_TURNS = 4

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


@asynccontextmanager
async def loopback(handler: Handler, host: str | None = None) -> AsyncIterator[str]:
    """Serve `handler` on 127.0.0.1 (a port of the system's choosing); yields the URL.
    With `host`, the handler sees its requests' URLs on `http://{host}`: one handler
    can stand for several upstreams, each on a loopback of its own."""
    async with _Loopback(handler, host) as server:
        yield server.url


def running(app: Starlette) -> AbstractAsyncContextManager[object]:
    """The app's lifespan, as a server runs it: its upstream clients open at the start
    and close at the end."""
    return app.router.lifespan_context(app)


class _Loopback(RawServer):
    def __init__(self, handler: Handler, host: str | None) -> None:
        super().__init__()
        self.handler = handler
        self.host = host
        self.failures: list[Exception] = []

    async def __aexit__(self, *exc_info: object) -> None:
        await super().__aexit__(*exc_info)
        if self.failures:
            raise self.failures[0]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        base = self.url if self.host is None else f"http://{self.host}"
        # Each write goes at once, as a server's would (Nagle's wait for an ACK, against
        # the bridge's delayed ACK, would hold every answer on a kept-alive connection).
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while (request := await _read_request(reader, base)) is not None:
            try:
                response = self.handler(request)
                if inspect.isawaitable(response):
                    response = await response
                await _write_response(writer, request, response)
            except httpx.TimeoutException:
                await reader.read()  # silent until the bridge hangs up
                return
            except ConnectionError:
                return  # the bridge hung up in the middle of the answer
            except Exception as exc:
                if not isinstance(exc, httpx.TransportError):
                    self.failures.append(exc)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # a reset, where the answer stands
                return
            if request.headers.get("connection", "").lower() == "close":
                return


async def _read_request(reader: asyncio.StreamReader, base: str) -> httpx.Request | None:
    head = b""
    while True:
        try:
            head += await reader.readuntil(b"\r\n\r\n")
            break
        except asyncio.LimitOverrunError as exc:  # a head longer than the reader's buffer
            head += await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return None  # the bridge closed a kept-alive connection
    start, *lines = head[:-4].split(b"\r\n")
    method, target, _ = start.split(b" ", 2)
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        headers.append((name, value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
    else:
        body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
    url = base + target.decode("latin-1")
    request = httpx.Request(method.decode(), url, headers=headers, stream=httpx.ByteStream(body))
    request.read()  # `content` is there, as on a request a client sent
    return request


async def _write_response(
    writer: asyncio.StreamWriter, request: httpx.Request, response: httpx.Response
) -> None:
    headers = list(response.headers.raw)
    names = {name.lower() for name, _ in headers}
    bodyless = request.method == "HEAD" or response.status_code in (204, 304)
    chunked = not bodyless and b"content-length" not in names
    if chunked and b"transfer-encoding" not in names:
        headers.append((b"transfer-encoding", b"chunked"))
    status = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n".encode()
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    writer.write(status + lines + b"\r\n")
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    async for chunk in stream:
        if chunk and not bodyless:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            for _ in range(_TURNS):  # the bridge reads each chunk alone, as from afar
                await asyncio.sleep(0)
    if chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


@contextmanager
def unaccepting() -> Iterator[str]:
    """The URL of a port that listens but never accepts: its queue is full, so a connect
    to it waits (its SYN is dropped) until the caller's connect timeout."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())  # the one place in the queue
        yield "http://{}:{}".format(*listener.getsockname())
