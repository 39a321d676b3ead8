"""The one upstream HTTP client, the headers that may cross it, and its errors as ours."""

import asyncio
import random
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import aiohttp
import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from proxy.config import DEMO_UPSTREAM, Settings
from proxy.errors import BadUpstreamResponse, BridgeError, UpstreamTimeout, UpstreamUnreachable
from proxy.retry import RetryBudget, backoff, retry_after, should_retry_status

MESSAGES_VERSION = "2023-06-01"

RawHeaders = list[tuple[bytes, bytes]]

# What a translated request forwards from the legacy client.
_FORWARDED = frozenset({b"x-api-key", b"authorization", b"anthropic-beta", b"user-agent"})
# Never forwarded on a pass-through: hop-by-hop (RFC 9110 7.6.1) and what the transport
# sets; and what a client could spoof to the upstream about who is calling.
_NOT_FORWARDED = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
        b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
        b"forwarded", b"via", b"x-real-ip", b"client-ip", b"true-client-ip",
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
    """All but hop-by-hop headers (also those `connection` names) and spoofable ones."""
    headers = list(headers)
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in _NOT_FORWARDED
        and lower not in named
        and not lower.startswith(b"x-forwarded-")
    ]


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


async def closing(response: httpx.Response) -> None:
    """Close an upstream response. The aiohttp transport releases (or, unread, closes)
    the connection before its first await, so a cancellation cannot keep it open."""
    await response.aclose()


class Upstream:
    """The one upstream transport, with explicit timeouts, limits and retries.

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
            def session() -> aiohttp.ClientSession:  # made once, inside the running loop
                connector = aiohttp.TCPConnector(
                    limit=settings.max_connections, ssl=httpx.create_ssl_context()
                )
                # No cookie jar: a proxy must not carry one caller's cookies to the next.
                return aiohttp.ClientSession(
                    connector=connector, cookie_jar=aiohttp.DummyCookieJar()
                )

            transport = AiohttpTransport(client=session)
        self.url = base_url
        self.settings = settings
        self._transport = transport
        # The transport only times the connection (and the wait for a pooled one); the
        # first byte and the gaps between bytes are timed here, each on its own clock.
        self._timeout = {
            "connect": settings.connect_timeout,
            "pool": settings.connect_timeout + settings.first_byte_timeout,
            "read": None,
            "write": None,
        }
        self._messages_url = httpx.URL(base_url + "/v1/messages")
        self._budget = RetryBudget(settings.retry_budget)
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)
        self._log = structlog.get_logger("complete-bridge")

    async def send(
        self,
        method: str,
        target: str,
        headers: Any,
        content: bytes | AsyncIterable[bytes],
    ) -> httpx.Response:
        """Send and return once the status and headers are in; the caller closes it.
        `target` is the path and query, as the client sent them. A body held in memory
        may be sent again (see proxy/retry.py); a streamed one is sent once."""
        url = self._messages_url if target == "/v1/messages" else httpx.URL(self.url + target)
        self._budget.deposit()
        attempt = 0
        while True:
            request = httpx.Request(
                method, url, headers=headers, content=content, extensions={"timeout": self._timeout}
            )
            failure: BridgeError | None = None
            try:
                response = await self._send_once(request)
            except UpstreamUnreachable as exc:
                failure, delay = exc, self._delay(attempt, content, None)
                if delay is None:
                    raise
            else:
                if not should_retry_status(response.status_code, response.headers):
                    return response
                delay = self._delay(attempt, content, response.headers)
                if delay is None:
                    return response
                await closing(response)
            self._log.warning(
                "upstream.retry",
                attempt=attempt + 1,
                after_status=None if failure else response.status_code,
                after_error=failure.message if failure else None,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, content: object, headers: httpx.Headers | None) -> float | None:
        """Seconds to wait before retrying, or None: no retry."""
        settings = self.settings
        if attempt >= settings.retries or not isinstance(content, bytes):
            return None
        wish = None if headers is None else retry_after(headers)
        delay = backoff(attempt, self._random.random()) if wish is None else wish
        if delay > settings.retry_max_wait or not self._budget.withdraw():
            return None
        return delay

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout):
                response = await self._transport.handle_async_request(request)
        except TimeoutError:
            raise UpstreamTimeout("upstream did not answer in time") from None
        except httpx.HTTPError as exc:
            raise upstream_error(exc) from None
        response.request = request
        return response

    async def chunks(self, response: httpx.Response, *, raw: bool = False) -> AsyncIterator[bytes]:
        """The upstream body as it arrives: decoded, or `raw` (still content-encoded).
        A gap of more than idle_timeout between chunks is an UpstreamTimeout; the time
        the caller takes between chunks does not count."""
        if response.is_stream_consumed:  # in-memory transports hand it over read already
            yield response.content
            return
        body = (response.aiter_raw() if raw else response.aiter_bytes()).__aiter__()
        idle = self.settings.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(body)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout(f"upstream sent nothing for {idle:g} s") from None
            except httpx.HTTPError as exc:
                raise upstream_error(exc) from None
            yield chunk

    async def read_all(self, response: httpx.Response) -> bytes:
        """The whole upstream body, decoded; at most max_body_bytes of it."""
        limit = self.settings.max_body_bytes
        parts, size = [], 0
        async for chunk in self.chunks(response):
            size += len(chunk)
            if size > limit:
                raise BadUpstreamResponse(f"upstream response is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._transport.aclose()
