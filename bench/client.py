"""A minimal asyncio HTTP/1.1 client: keep-alive, one request at a time per connection.

It notes when the first byte of an answer's body arrives (time to first byte) and when the
last one does, and costs little per chunk, so it is not what limits a measurement, nor
what makes one target look slower than another: the bytes are timed as they arrive.
Answers are framed by content-length or chunked encoding (as uvicorn and the fake
upstream send them), or end with the connection.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes  # decoded from its framing
    first_at: float  # perf_counter() when the first body byte arrived
    done_at: float  # ... and the last


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Answer] | None = None
        self._on_first: Callable[[], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._body_start = self._length = self._pos = -1
        self._status, self._first_at = 0, 0.0
        self._chunks: list[bytes] = []

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def request(
        self, raw: bytes, within_s: float = 60, on_first: Callable[[], None] | None = None
    ) -> Answer:
        """Send one whole request; the answer once its last byte is in."""
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        loop = asyncio.get_running_loop()
        self._reset()
        self._waiter, self._on_first = loop.create_future(), on_first
        self.transport.write(raw)
        timer = loop.call_later(within_s, self._fail, TimeoutError("no whole answer in time"))
        try:
            return await self._waiter
        finally:
            timer.cancel()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._length == -2 and self._body_start >= 0:  # the body ends with the connection
            self._done(bytes(self._buffer[self._body_start :]))
        self._fail(ConnectionError("connection closed before the whole answer"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            return
        self._buffer += data
        if self._body_start < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(self._buffer[:end]).lower())
            self._body_start = self._pos = end + 4
        if not self._first_at and len(self._buffer) > self._body_start:
            self._first_at = time.perf_counter()
            if self._on_first is not None:
                self._on_first()
        if self._length >= 0:
            end = self._body_start + self._length
            if len(self._buffer) >= end:
                self._done(bytes(self._buffer[self._body_start : end]))
        elif self._length == -1:
            self._dechunk()

    # framing

    def _head(self, head: bytes) -> None:
        self._status = int(head[9:12])
        if b"\r\nconnection: close" in head:
            self.closed = True  # the server closes after this answer: do not reuse
        start = head.find(b"\r\ncontent-length:")
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            self._length = int(head[start + 17 : end if end >= 0 else None])
        elif b"\r\ntransfer-encoding: chunked" in head:
            self._length = -1
        elif self._status in (204, 304):
            self._length = 0
        else:
            self._length = -2

    def _dechunk(self) -> None:
        buffer = self._buffer
        while (line_end := buffer.find(b"\r\n", self._pos)) >= 0:
            size = int(bytes(buffer[self._pos : line_end]).split(b";")[0], 16)
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return
            if size == 0:  # no trailers here
                self._done(b"".join(self._chunks))
                return
            self._chunks.append(bytes(buffer[start : start + size]))
            self._pos = start + size + 2

    def _done(self, body: bytes) -> None:
        if self._waiter is not None and not self._waiter.done():
            first = self._first_at or time.perf_counter()
            self._waiter.set_result(Answer(self._status, body, first, time.perf_counter()))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
            self.closed = True  # an answer cut or late: never reuse the connection
            self.close()
