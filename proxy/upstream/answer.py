"""The upstream's answer, whichever transport fetched it: status and headers in, the body
to follow as an async iterator of bytes. A transport's failures are ours (proxy/errors.py)
by the time they leave it, the body's included.
"""

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping

from multidict import CIMultiDict

from proxy.upstream.headers import RawHeaders

# The most one read of an upstream body hands on: what is translated and written at once.
READ_SIZE = 64 * 1024


class Answer:
    """The upstream's answer once its status and headers are in; the body follows, read
    through Upstream.chunks. Whoever sent the request closes it with `closing`."""

    __slots__ = ("body", "close", "headers", "raw_headers", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        raw_headers: RawHeaders,
        body: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.status_code = status_code
        self.headers = headers  # case-insensitive
        self.raw_headers = raw_headers
        self.body = body
        self.close = close


def answer(status: int, headers: RawHeaders, body: bytes | AsyncIterable[bytes] = b"") -> Answer:
    """An answer made in memory (the in-memory transport's handlers): `body` whole, or
    as it is produced."""
    view = CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers)
    chunks = _once(body) if isinstance(body, bytes) else aiter(body)

    async def close() -> None:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    return Answer(status, view, headers, chunks, close)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def closing(answer: Answer) -> None:
    """Close an upstream answer, read or not."""
    await answer.close()
