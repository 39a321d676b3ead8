"""What the bridge holds an upstream answer to, each on its own clock or count: the first
byte (status and headers) within first_byte_timeout, a status and headers the client's
wire can carry, no gap between body chunks over idle_timeout, a whole body of at most
max_body_bytes. Small functions over an attempt and over the body iterator.

The timeouts are silences on the upstream client's one clock (proxy/upstream/clock.py),
not a timer per wait.
"""

import asyncio
from collections.abc import AsyncIterator

from proxy.errors import BadUpstreamResponse, UpstreamTimeout
from proxy.upstream.answer import Answer, closing
from proxy.upstream.clock import Clock, Silence
from proxy.upstream.headers import has_invalid_header
from proxy.upstream.transport import Request, Transport

# What an upstream may answer with. aiohttp reads informational 1xx answers past (but a
# 101), and hands on any three digits; HTTP has no final status outside these.
FINAL_STATUSES = range(200, 600)


class Guarded:
    """A Transport layer: the inner transport's attempt, within first_byte_timeout, and
    only an answer with a final status and valid headers (else BadUpstreamResponse)."""

    def __init__(
        self, inner: Transport, first_byte_timeout: float, clock: Clock | None = None
    ) -> None:
        self.inner = inner
        self._first_byte = first_byte_timeout
        self._clock = Clock() if clock is None else clock

    def open(self) -> None:
        self.inner.open()

    async def send(self, request: Request) -> Answer:
        silence = Silence(self._first_byte, self._clock)
        silence.wait()
        try:
            answer = await self.inner.send(request)
        except asyncio.CancelledError:
            if silence.timed_out():
                raise UpstreamTimeout("upstream did not answer in time") from None
            raise
        finally:
            silence.done()
        if answer.status_code not in FINAL_STATUSES:  # 1xx, 0, 600...: no answer
            await closing(answer)
            raise BadUpstreamResponse(f"upstream sent unexpected status {answer.status_code}")
        if has_invalid_header(answer.raw_headers):
            await closing(answer)
            raise BadUpstreamResponse("upstream sent a header that is not valid HTTP")
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


class IdleTimeout:
    """The body as it arrives, empty chunks left out. A gap of more than `seconds`
    between chunks is an UpstreamTimeout; the time the reader takes between chunks does
    not count. An async iterator, not an async generator: asyncio enters every async
    generator in a weak set when it starts and takes it out when it ends, a cost per
    call of its own."""

    __slots__ = ("_body", "_seconds", "_silence")

    def __init__(
        self, body: AsyncIterator[bytes], seconds: float, clock: Clock | None = None
    ) -> None:
        self._body, self._seconds = body, seconds
        self._silence = Silence(seconds, clock)

    def __aiter__(self) -> "IdleTimeout":
        return self

    async def __anext__(self) -> bytes:
        silence = self._silence
        while True:
            silence.wait()
            try:
                chunk = await anext(self._body)
            except asyncio.CancelledError:
                if silence.timed_out():
                    raise UpstreamTimeout(
                        f"upstream sent nothing for {self._seconds:g} s"
                    ) from None
                raise
            finally:
                silence.done()
            if chunk:
                return chunk


async def read_capped(body: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body; BadUpstreamResponse once it is over `limit` bytes."""
    parts, size = [], 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise BadUpstreamResponse(f"upstream response is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
