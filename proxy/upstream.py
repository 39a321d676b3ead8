"""The one upstream HTTP client, the headers that may cross it, and its errors as ours.

On the network the client is aiohttp, used directly: per request it costs a fraction of
httpx's (see README, Performance). An httpx transport can stand in for the network
(tests use httpx.MockTransport; `demo:` has its own), behind the same `Answer`.
"""

import asyncio
import random
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping

import aiohttp
import httpx
import structlog

from proxy.config import DEMO_UPSTREAM, Settings
from proxy.errors import BadUpstreamResponse, BridgeError, UpstreamTimeout, UpstreamUnreachable
from proxy.pool import Pool
from proxy.retry import RetryBudget, backoff, retry_after, should_retry_status

MESSAGES_VERSION = "2023-06-01"

RawHeaders = list[tuple[bytes, bytes]]

# What an upstream may answer with. aiohttp reads informational 1xx answers past (but a
# 101), and hands on any three digits; HTTP has no final status outside these.
FINAL_STATUSES = range(200, 600)

# The most one read of an upstream body hands on: what is translated and written at once.
READ_SIZE = 64 * 1024

# What a translated request forwards from the legacy client.
_FORWARDED = frozenset({b"x-api-key", b"authorization", b"anthropic-beta", b"user-agent"})
# What a client could spoof to the upstream about who is calling and from where: never
# passed on, in either direction (nor any name starting `x-forwarded`). README, Security.
CLIENT_ADDRESS_HEADERS = frozenset(
    {
        b"forwarded", b"via", b"x-real-ip", b"x-client-ip", b"client-ip", b"true-client-ip",
        b"cf-connecting-ip", b"cf-connecting-ipv6", b"fastly-client-ip", b"x-originating-ip",
        b"x-cluster-client-ip", b"x-remote-addr", b"x-remote-ip", b"x-original-forwarded-for",
        b"x-envoy-external-address", b"x-azure-clientip", b"x-azure-socketip",
        b"x-appengine-user-ip", b"x-proxyuser-ip", b"wl-proxy-client-ip", b"proxy-client-ip",
    }
)  # fmt: skip
_CLIENT_ADDRESS_PREFIX = b"x-forwarded"
# Never forwarded on a pass-through: hop-by-hop (RFC 9110 7.6.1), what the transport sets,
# and `expect`: the bridge answers a client's `100-continue` itself (the server does, as
# the body is read) and never waits on the upstream for one.
_NOT_FORWARDED = CLIENT_ADDRESS_HEADERS | {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
    b"expect",
}  # fmt: skip
# Response headers a translated answer keeps: SDKs read them for ids and retries.
_RELAYED = frozenset({b"request-id", b"retry-after", b"retry-after-ms", b"x-should-retry"})
_RELAYED_PREFIX = b"anthropic-ratelimit-"

# What no header may hold on the client's wire (RFC 9110 5.1, 5.5; the server refuses to
# write it): an upstream answer with one is a bad answer, not a crash mid-response.
_BAD_NAME = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"/?]')
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# Headers stay bytes end to end: nothing a client or upstream sends can fail to re-encode.


def translated_headers(client: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """Headers for the upstream Messages call, from the legacy client's."""
    headers = [(name, value) for name, value in client if name.lower() in _FORWARDED]
    headers.append((b"anthropic-version", MESSAGES_VERSION.encode()))
    headers.append((b"content-type", b"application/json"))
    return headers


def passthrough_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """All but hop-by-hop headers (also those `connection` names), `expect`, and
    client-address ones."""
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
        and not lower.startswith(_CLIENT_ADDRESS_PREFIX)
    ]


def relayed_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The upstream response headers a legacy client gets back."""
    return [
        (name, value)
        for name, value in headers
        if name.lower() in _RELAYED or name.lower().startswith(_RELAYED_PREFIX)
    ]


def upstream_error(exc: Exception) -> BridgeError:
    """An upstream failure (aiohttp's, or an httpx transport's) as ours."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError | httpx.ConnectTimeout):
        return UpstreamUnreachable("upstream unreachable: connection timed out")
    if isinstance(exc, aiohttp.ServerTimeoutError | httpx.TimeoutException):
        return UpstreamTimeout("upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError | httpx.ConnectError):
        return UpstreamUnreachable("upstream unreachable: could not connect")
    return UpstreamUnreachable("upstream connection lost")


UPSTREAM_ERRORS = (aiohttp.ClientError, httpx.HTTPError)


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


def _from_aiohttp(response: aiohttp.ClientResponse) -> Answer:
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


def _from_httpx(response: httpx.Response, *, raw: bool) -> Answer:
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


class Upstream:
    """The one upstream client, with explicit timeouts, limits and retries."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        base_url, owned = settings.upstream_url, None
        if base_url == DEMO_UPSTREAM:
            from proxy.demo import DemoTransport

            owned = None if transport else DemoTransport()
            base_url, transport = "http://demo.invalid", transport or owned
        self.url = base_url
        self.settings = settings
        self._transport = transport  # a transport given is closed by its giver
        self._owned_transport = owned
        self._session: aiohttp.ClientSession | None = None
        # The connection (and the wait for a pooled one) is timed by aiohttp; the first
        # byte and the gaps between bytes are timed here, each on its own clock.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout + settings.first_byte_timeout,
            sock_connect=settings.connect_timeout,
        )
        self._httpx_timeout = {
            "connect": settings.connect_timeout,
            "pool": settings.connect_timeout + settings.first_byte_timeout,
            "read": None,
            "write": None,
        }
        self._budget = RetryBudget(settings.retry_budget)
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)
        self._log = structlog.get_logger("complete-bridge")

    def open(self) -> None:
        """Make the network client now (at startup), not on the first request: loading
        the CA bundle takes tens of ms."""
        if self._transport is None:
            self._client()

    def _client(self) -> aiohttp.ClientSession:
        """aiohttp's session, made on first use, inside the running loop."""
        if self._session is None:
            connector = Pool(
                self._log, limit=self.settings.max_connections, ssl=httpx.create_ssl_context()
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # no caller's cookies go to the next
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                timeout=self._timeout,
            )
        return self._session

    async def send(
        self,
        method: str,
        target: str,
        headers: RawHeaders,
        content: bytes | AsyncIterable[bytes],
        *,
        raw: bool = False,
    ) -> Answer:
        """Send and return once the status and headers are in; the caller closes it.
        `target` is the path and query, as the client sent them; `raw` keeps the body
        content-encoded as the upstream sent it (httpx transports decode it otherwise;
        aiohttp never decodes, and the bridge asks for no encoding the client did not).
        A body held in memory may be sent again (see proxy/retry.py); a streamed one is
        sent once."""
        self._budget.deposit()
        attempt = 0
        while True:
            failure: BridgeError | None = None
            try:
                answer = await self._send_once(method, target, headers, content, raw)
            except UpstreamUnreachable as exc:
                failure, delay = exc, self._delay(attempt, content, None)
                if delay is None:
                    raise
            else:
                if answer.status_code not in FINAL_STATUSES:  # 1xx, 0, 600...: no answer
                    await closing(answer)
                    status = answer.status_code
                    raise BadUpstreamResponse(f"upstream sent unexpected status {status}")
                if any(
                    _BAD_NAME.search(name) or _BAD_VALUE.search(value)
                    for name, value in answer.raw_headers
                ):
                    await closing(answer)
                    raise BadUpstreamResponse("upstream sent a header that is not valid HTTP")
                if not should_retry_status(answer.status_code, answer.headers):
                    return answer
                delay = self._delay(attempt, content, answer.headers)
                if delay is None:
                    return answer
                await closing(answer)
            self._log.warning(
                "upstream.retry",
                attempt=attempt + 1,
                after_status=None if failure else answer.status_code,
                after_error=failure.message if failure else None,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _delay(
        self, attempt: int, content: object, headers: Mapping[str, str] | None
    ) -> float | None:
        """Seconds to wait before retrying, or None: no retry."""
        settings = self.settings
        if attempt >= settings.retries or not isinstance(content, bytes):
            return None
        wish = None if headers is None else retry_after(headers)
        delay = backoff(attempt, self._random.random()) if wish is None else wish
        if delay > settings.retry_max_wait or not self._budget.withdraw():
            return None
        return delay

    async def _send_once(
        self,
        method: str,
        target: str,
        headers: RawHeaders,
        content: bytes | AsyncIterable[bytes],
        raw: bool,
    ) -> Answer:
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout):
                if self._transport is not None:
                    request = httpx.Request(
                        method,
                        self.url + target,
                        headers=headers,
                        content=content,
                        extensions={"timeout": self._httpx_timeout},
                    )
                    response = await self._transport.handle_async_request(request)
                    response.request = request
                    return _from_httpx(response, raw=raw)
                answer = await self._client().request(
                    method,
                    self.url + target,
                    headers=[
                        (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
                    ],
                    data=content or None,
                    allow_redirects=False,
                    compress=False,
                )
                return _from_aiohttp(answer)
        except UPSTREAM_ERRORS as exc:  # first: aiohttp's timeouts are TimeoutErrors too
            raise upstream_error(exc) from None
        except TimeoutError:
            raise UpstreamTimeout("upstream did not answer in time") from None

    async def chunks(self, answer: Answer) -> AsyncIterator[bytes]:
        """The upstream body as it arrives. A gap of more than idle_timeout between
        chunks is an UpstreamTimeout; the time the caller takes between chunks does
        not count."""
        idle = self.settings.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(answer.body)
            except StopAsyncIteration:
                return
            except UPSTREAM_ERRORS as exc:  # first: aiohttp's timeouts are TimeoutErrors too
                raise upstream_error(exc) from None
            except TimeoutError:
                raise UpstreamTimeout(f"upstream sent nothing for {idle:g} s") from None
            if chunk:
                yield chunk

    async def read_all(self, answer: Answer) -> bytes:
        """The whole upstream body; at most max_body_bytes of it."""
        limit = self.settings.max_body_bytes
        parts, size = [], 0
        async for chunk in self.chunks(answer):
            size += len(chunk)
            if size > limit:
                raise BadUpstreamResponse(f"upstream response is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._owned_transport is not None:
            await self._owned_transport.aclose()
