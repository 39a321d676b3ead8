"""The one upstream HTTP client, the headers that may cross it, and its errors as ours."""

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import aiohttp
import anyio
import httpx
from httpx_aiohttp import AiohttpTransport

from proxy.config import DEMO_UPSTREAM, Settings
from proxy.errors import BridgeError, UpstreamTimeout, UpstreamUnreachable

MESSAGES_VERSION = "2023-06-01"

RawHeaders = list[tuple[bytes, bytes]]

# What a translated request forwards from the legacy client.
_FORWARDED = frozenset({b"x-api-key", b"authorization", b"anthropic-beta", b"user-agent"})
# Never forwarded on a pass-through: hop-by-hop (RFC 9110 7.6.1), and what httpx sets.
_HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
        b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
    }
)  # fmt: skip
# Response headers a translated answer keeps: SDKs read them for ids and retries.
_RELAYED = frozenset({b"request-id", b"retry-after", b"retry-after-ms", b"x-should-retry"})
_RELAYED_PREFIX = b"anthropic-ratelimit-"

# Headers stay bytes end to end: nothing a client or upstream sends can fail to re-encode.


def translated_headers(client: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """Headers for the upstream Messages call, from the legacy client's."""
    headers = [(name, value) for name, value in client if name.lower() in _FORWARDED]
    headers.append((b"anthropic-version", MESSAGES_VERSION.encode()))
    headers.append((b"content-type", b"application/json"))
    return headers


def passthrough_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    return [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]


def relayed_headers(response: httpx.Response) -> RawHeaders:
    """The upstream response headers a legacy client gets back."""
    return [
        (name, value)
        for name, value in response.headers.raw
        if name.lower() in _RELAYED or name.lower().startswith(_RELAYED_PREFIX)
    ]


def upstream_error(exc: httpx.HTTPError) -> BridgeError:
    """An upstream failure as ours. The aiohttp transport maps aiohttp's errors loosely
    (a dropped connection arrives as ConnectTimeout), so its original error decides."""
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    if isinstance(cause, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout):
        return UpstreamUnreachable("upstream unreachable: connection timed out")
    if isinstance(cause, aiohttp.ServerTimeoutError | httpx.TimeoutException):
        return UpstreamTimeout("upstream did not answer in time")
    if isinstance(cause, aiohttp.ClientConnectorError | httpx.ConnectError):
        return UpstreamUnreachable("upstream unreachable: could not connect")
    return UpstreamUnreachable("upstream connection lost")


async def read_all(response: httpx.Response) -> bytes:
    """The whole upstream body, decoded."""
    try:
        return await response.aread()
    except httpx.HTTPError as exc:
        raise upstream_error(exc) from None


async def chunks(response: httpx.Response, *, raw: bool = False) -> AsyncIterator[bytes]:
    """The upstream body as it arrives: decoded, or `raw` (still content-encoded)."""
    try:
        if response.is_stream_consumed:  # in-memory transports hand it over read already
            yield response.content
            return
        async for chunk in response.aiter_raw() if raw else response.aiter_bytes():
            yield chunk
    except httpx.HTTPError as exc:
        raise upstream_error(exc) from None


async def closing(response: httpx.Response) -> None:
    """Close an upstream response even while our task is being cancelled."""
    with anyio.CancelScope(shield=True):
        await response.aclose()


class Upstream:
    """The one upstream transport, with explicit timeouts and limits.

    Requests go straight to the transport: httpx's client layer would add per-request
    work (URL merging, auth and redirect hooks) and a cookie jar, and a proxy must not
    carry one caller's cookies to the next."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        base_url = settings.upstream_url
        if base_url == DEMO_UPSTREAM:
            from proxy.demo import DemoTransport

            base_url, transport = "http://demo.invalid", transport or DemoTransport()
        if transport is None:
            # httpcore's pool costs CPU per request that grows with pooled connections;
            # aiohttp's stays flat (see README, Performance). httpx's API stays ours.
            limits = httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=100
            )
            transport = AiohttpTransport(limits=limits)
        self.url = base_url
        self._transport = transport
        self._timeout = httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout
        ).as_dict()
        self._messages_url = httpx.URL(base_url + "/v1/messages")

    async def send(
        self,
        method: str,
        target: str,
        headers: Any,
        content: bytes | AsyncIterable[bytes],
    ) -> httpx.Response:
        """Send and return once the status and headers are in; the caller closes it.
        `target` is the path and query, as the client sent them."""
        url = self._messages_url if target == "/v1/messages" else httpx.URL(self.url + target)
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self._timeout}
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise upstream_error(exc) from None
        response.request = request
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()
