"""The upstream's answer, whichever client fetched it: aiohttp on the network, or an
httpx transport standing in for it (tests use httpx.MockTransport; `demo:` has its own).
Both become one `Answer`, and both clients' failures become ours.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
import httpx

from proxy.errors import BridgeError, UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.headers import RawHeaders

# The most one read of an upstream body hands on: what is translated and written at once.
READ_SIZE = 64 * 1024

UPSTREAM_ERRORS = (aiohttp.ClientError, httpx.HTTPError)


def upstream_error(exc: Exception) -> BridgeError:
    """An upstream failure (aiohttp's, or an httpx transport's) as ours."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout):
        return UpstreamUnreachable("upstream unreachable: connection timed out")
    if isinstance(exc, aiohttp.ServerTimeoutError | httpx.TimeoutException):
        return UpstreamTimeout("upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError | httpx.ConnectError):
        return UpstreamUnreachable("upstream unreachable: could not connect")
    return UpstreamUnreachable("upstream connection lost")


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


def from_aiohttp(response: aiohttp.ClientResponse) -> Answer:
    async def close() -> None:
        # Both are synchronous: a cancellation cannot leave the connection open.
        if response.content.is_eof():
            response.release()  # read whole: the connection goes back to the pool
        else:
            response.close()  # cut short: the upstream sees the connection close

    return Answer(
        response.status,
        response.headers,
        list(response.raw_headers),
        response.content.iter_chunked(READ_SIZE),
        close,
    )


def from_httpx(response: httpx.Response, *, raw: bool) -> Answer:
    async def body() -> AsyncIterator[bytes]:
        if response.is_stream_consumed:  # in-memory transports hand it over read already
            if raw:  # `content` is decoded; the stream still holds the bytes as sent
                async for chunk in response.stream:  # type: ignore[union-attr]
                    yield chunk
            else:
                yield response.content
            return
        async for chunk in response.aiter_raw() if raw else response.aiter_bytes():
            yield chunk

    return Answer(
        response.status_code, response.headers, response.headers.raw, body(), response.aclose
    )


async def closing(answer: Answer) -> None:
    """Close an upstream answer, read or not."""
    await answer.close()
