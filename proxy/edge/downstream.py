"""The downstream side of one request: the legacy client's body, its hang-up, and the
response we send it, over raw ASGI."""

import asyncio
import time
from asyncio import AbstractEventLoop
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Send

from proxy.edge.inflight import Hold
from proxy.errors import BridgeError, RequestTooLarge, ShuttingDown
from proxy.translate.response import dumps, error_envelope
from proxy.upstream.clock import Clock
from proxy.upstream.headers import RawHeaders

JSON = (b"content-type", b"application/json")
# Statuses whose answers never have a body (RFC 9110 6.4.1): the framing headers an
# upstream sends with one (a 304's content-length is the representation's) frame nothing
# on this wire, and a body written after one would be read as the start of the client's
# next answer. Both are dropped.
BODILESS = frozenset({204, 304})
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
WATCH_AFTER = 0.05  # seconds of work before a hang-up is watched for


class ClientGone(Exception):
    """The client hung up while we were reading its request."""


class _Watch:
    """The watch for a call's hang-up, started when due (by the clock), stopped at the
    end of the call."""

    __slots__ = ("_call", "_client", "_loop", "_task", "deadline")

    def __init__(
        self, deadline: float, client: "Client", call: "asyncio.Task[Any]", loop: AbstractEventLoop
    ) -> None:
        self.deadline, self._client, self._call, self._loop = deadline, client, call, loop
        self._task: asyncio.Task[None] | None = None

    def expire(self) -> None:
        watching = self._client.watch(self._call)
        self._task = self._loop.create_task(watching, name="watch for client disconnect")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()  # it holds nothing: cancelled, it just ends


def refuse_declared_over(headers: Headers, limit: int) -> int | None:
    """A body declared larger than `limit` is refused before it is read; else its declared
    length. (A content-length that is not plain digits is left to the server, which reads
    what actually comes: None, as for a body without one.)"""
    declared = headers.get("content-length", "").strip()
    if not (declared.isascii() and declared.isdigit()):
        return None
    digits = declared.lstrip("0")
    if len(digits) > 18 or int(digits or "0") > limit:  # int() refuses past 4300 digits
        raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
    return int(digits or "0")


class Client:
    """The ASGI side of one request: its body, its disconnect, and the response sent."""

    def __init__(self, receive: Receive, send: Send, clock: Clock | None = None) -> None:
        self._receive, self._send = receive, send
        self._clock = Clock() if clock is None else clock  # when to watch for a hang-up
        self._own_clock = clock is None
        self._body_read = asyncio.Event()
        self.started = time.perf_counter()
        self.status: int | None = None
        self.first_byte: float | None = None
        self.disconnected = False
        self.complete = False
        # How a response already started ends in an error (a translated stream's error
        # event); None: it cannot, and is cut (the server closes the connection).
        self.fail: Callable[[BridgeError], bytes] | None = None
        self._body_failure: BridgeError | ClientGone | None = None

    async def body_chunks(self, limit: int) -> AsyncIterator[bytes]:
        size, more = 0, True
        while more:
            chunk, more = await self._next_chunk(size, limit)
            size += len(chunk)
            yield chunk

    async def _next_chunk(self, size: int, limit: int) -> tuple[bytes, bool]:
        """The next chunk of the body, `size` bytes of which were read; whether more
        follow. Over `limit` in all: RequestTooLarge; the client gone: ClientGone."""
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self._body_failure = ClientGone()
            raise self._body_failure
        chunk: bytes = message.get("body", b"")
        if size + len(chunk) > limit:
            self._body_failure = RequestTooLarge(
                f"request body is larger than the limit of {limit} bytes"
            )
            raise self._body_failure
        more: bool = message.get("more_body", False)
        if not more:
            self._body_read.set()
        return chunk, more

    def raise_body_failure(self) -> None:
        """If reading the body failed (too large, or the client left), raise that: for
        when the body was read by someone who reports failures their own way."""
        if self._body_failure is not None:
            raise self._body_failure

    async def read_body(self, limit: int, hold: Hold | None = None) -> bytearray:
        """The whole body, grown in place (chunks joined at the end held it twice). With
        `hold`, each chunk is taken from the in-flight budget as it arrives."""
        body, more = bytearray(), True
        try:
            while more:  # not through body_chunks: a generator costs a frame a chunk
                chunk, more = await self._next_chunk(len(body), limit)
                if hold is not None:
                    hold.take(len(chunk))
                body += chunk
        except asyncio.CancelledError as exc:
            raise self._cut(exc) from None
        return body

    async def until_disconnect(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`; if the client hangs up once its body is read, cancel it and raise
        ClientGone. The watcher starts only once the work has run WATCH_AFTER seconds:
        most calls end sooner, and a task per call is a good share of a fast call's cost
        (an anyio task group, ~90 µs). A hang-up is noticed at most that much later. The
        start is due on the clock the calls share (proxy/upstream/clock.py), not on a
        timer of the call's own."""
        loop = self._clock.loop()  # each lookup of the loop is a getpid() call
        task = asyncio.current_task(loop)
        assert task is not None
        due = _Watch(loop.time() + WATCH_AFTER, self, task, loop)
        self._clock.watch(due, due.deadline)
        try:
            await work()
        except asyncio.CancelledError as exc:
            raise self._cut(exc) from None
        finally:
            self._clock.forget(due)
            due.stop()
            if self._own_clock:
                self._clock.stop()

    def _cut(self, exc: asyncio.CancelledError) -> BaseException:
        """What to raise for a cancel of this request's task, taken back so that the
        call can still end as the legacy API ends one: ClientGone if the client hung up
        (our watcher cancels then); else the server is stopping the call (uvicorn cancels
        what still runs at the drain deadline): ShuttingDown, answered 503 or the error
        event. A CancelledError that is not a cancel of this task stays what it is."""
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            return exc
        while task.uncancel():
            pass
        return ClientGone() if self.disconnected else ShuttingDown()

    async def watch(self, task: asyncio.Task[Any]) -> None:
        """Cancel `task` if the client hangs up once its body is read (before the answer
        is complete)."""
        await self._body_read.wait()
        message: Message = {"type": ""}
        while message["type"] != "http.disconnect":
            message = await self._receive()
        if not self.complete:  # the server also says so once a response is done
            self.disconnected = True
            task.cancel()

    async def start(self, status: int, headers: RawHeaders) -> None:
        self.status = status
        if status in BODILESS:
            headers = [(name, value) for name, value in headers if name.lower() not in _FRAMING]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes, *, more: bool = True) -> None:
        if self.status in BODILESS:
            data = b""
        if self.first_byte is None and data:
            self.first_byte = time.perf_counter()
        await self._send({"type": "http.response.body", "body": data, "more_body": more})
        self.complete = not more

    async def respond(self, status: int, headers: RawHeaders, body: bytes) -> None:
        await self.start(status, [*headers, (b"content-length", str(len(body)).encode())])
        await self.write(body, more=False)

    async def error(self, exc: BridgeError) -> None:
        """End the call with `exc`: in the legacy envelope if nothing was sent yet; once
        a response is under way, with its error event if it has one (`fail`), else not
        at all (a cut body: the server closes the connection)."""
        if self.status is None:
            advice = exc.retry_advice
            headers = [JSON] if advice is None else [JSON, (b"x-should-retry", advice)]
            if exc.retry_after is not None:
                headers.append((b"retry-after", str(exc.retry_after).encode()))
            body = dumps(error_envelope(exc.error_type, exc.message))
            await self.respond(exc.status, headers, body)
        elif self.fail is not None and not self.complete:
            await self.write(self.fail(exc))
            await self.write(b"", more=False)

    def timings(self) -> tuple[float | None, float]:
        """Milliseconds to the first byte sent (None: none was) and to now."""
        first = self.first_byte
        return (
            None if first is None else round((first - self.started) * 1000, 2),
            round((time.perf_counter() - self.started) * 1000, 2),
        )
