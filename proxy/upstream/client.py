"""The one upstream HTTP client: explicit timeouts, a connection limit, retries.

On the network the client is aiohttp, used directly: per request it costs a fraction of
httpx's (see bench/README.md). An httpx transport can stand in for the network,
behind the same `Answer` (proxy/upstream/answer.py). What headers may cross is
proxy/upstream/headers.py.
"""

import asyncio
import random
from collections.abc import AsyncIterable, AsyncIterator, Mapping

import aiohttp
import httpx
import structlog

from proxy.config.settings import DEMO_UPSTREAM, Settings
from proxy.errors import BadUpstreamResponse, BridgeError, UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.answer import (
    UPSTREAM_ERRORS,
    Answer,
    closing,
    from_aiohttp,
    from_httpx,
    upstream_error,
)
from proxy.upstream.headers import RawHeaders, has_invalid_header
from proxy.upstream.pool import Pool
from proxy.upstream.retry import RetryBudget, backoff, retry_after, should_retry_status

# What an upstream may answer with. aiohttp reads informational 1xx answers past (but a
# 101), and hands on any three digits; HTTP has no final status outside these.
FINAL_STATUSES = range(200, 600)


class Upstream:
    """The one upstream client, with explicit timeouts, limits and retries."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        base_url, owned = settings.upstream_url, None
        if base_url == DEMO_UPSTREAM:
            from proxy.upstream.demo import DemoTransport

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
        A body held in memory may be sent again (see proxy/upstream/retry.py); a streamed one is
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
                if has_invalid_header(answer.raw_headers):
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
                    return from_httpx(response, raw=raw)
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
                return from_aiohttp(answer)
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
