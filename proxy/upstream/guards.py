"""What the bridge holds an upstream answer to, each on its own clock or count: the first
byte (status and headers) within first_byte_timeout, a status and headers the client's
wire can carry, no gap between body chunks over idle_timeout, a whole body of at most
max_body_bytes. Small functions over an attempt and over the body iterator.

The clocks are `Silence` timers, not asyncio.timeout: one timer for a whole body however
many chunks it has (asyncio.timeout makes and cancels one per chunk, a good share of a
fast call's cost).
"""

import asyncio
from collections.abc import AsyncIterator

from proxy.errors import BadUpstreamResponse, UpstreamTimeout
from proxy.upstream.answer import Answer, closing
from proxy.upstream.headers import has_invalid_header
from proxy.upstream.transport import Request, Transport

# What an upstream may answer with. aiohttp reads informational 1xx answers past (but a
# 101), and hands on any three digits; HTTP has no final status outside these.
FINAL_STATUSES = range(200, 600)


class Silence:
    """A timeout over the waits of the task that makes it: once a wait has lasted
    `seconds`, the task is cancelled, and `timed_out` then takes that cancel back. Time
    outside a wait does not count. One timer, set when a wait begins if none is set, and
    set again for the rest of the wait when it fires early; a wait costs a clock read."""

    __slots__ = (
        "_cancelling", "_deadline", "_handle", "_loop", "_seconds", "_task", "expired", "waiting"
    )  # fmt: skip

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(self._loop)  # given the loop: not looked up again
        assert task is not None
        self._task, self._seconds = task, seconds
        self._handle: asyncio.TimerHandle | None = None
        self._deadline, self._cancelling = 0.0, 0
        self.expired = self.waiting = False

    def wait(self) -> None:
        """A wait begins (`waiting` is set back to False when it ends)."""
        self._deadline = self._loop.time() + self._seconds
        self._cancelling = self._task.cancelling()
        self.waiting = True
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self.waiting:
            return  # set again by the next wait
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self.expired = True
        self._task.cancel()

    def timed_out(self) -> bool:
        """On a CancelledError out of a wait: whether it was this timer's (taken back)."""
        return self.expired and self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Guarded:
    """A Transport layer: the inner transport's attempt, within first_byte_timeout, and
    only an answer with a final status and valid headers (else BadUpstreamResponse)."""

    def __init__(self, inner: Transport, first_byte_timeout: float) -> None:
        self.inner = inner
        self._first_byte = first_byte_timeout

    def open(self) -> None:
        self.inner.open()

    async def send(self, request: Request) -> Answer:
        clock = Silence(self._first_byte)
        clock.wait()
        try:
            answer = await self.inner.send(request)
        except asyncio.CancelledError:
            if clock.timed_out():
                raise UpstreamTimeout("upstream did not answer in time") from None
            raise
        finally:
            clock.close()
        if answer.status_code not in FINAL_STATUSES:  # 1xx, 0, 600...: no answer
            await closing(answer)
            raise BadUpstreamResponse(f"upstream sent unexpected status {answer.status_code}")
        if has_invalid_header(answer.raw_headers):
            await closing(answer)
            raise BadUpstreamResponse("upstream sent a header that is not valid HTTP")
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def idle_timeout(body: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """The body as it arrives, empty chunks left out. A gap of more than `seconds`
    between chunks is an UpstreamTimeout; the time the reader takes between chunks does
    not count."""
    clock = Silence(seconds)
    try:
        while True:
            clock.wait()
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if clock.timed_out():
                    raise UpstreamTimeout(f"upstream sent nothing for {seconds:g} s") from None
                raise
            clock.waiting = False
            if chunk:
                yield chunk
    finally:
        clock.close()


async def read_capped(body: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body; BadUpstreamResponse once it is over `limit` bytes."""
    parts, size = [], 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise BadUpstreamResponse(f"upstream response is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
