"""The network transport: aiohttp, used directly (per request it costs a fraction of
httpx's, see bench/README.md), on the pool of proxy/upstream/pool.py. What production runs.

aiohttp's connect timeouts are set here; the first byte and the gaps between body chunks
are timed by proxy/upstream/guards.py. aiohttp never decodes a body, and sends no
`accept-encoding` or `user-agent` of its own: the bridge asks for no encoding the client
did not.
"""

import aiohttp
import structlog

from proxy.config.settings import Settings
from proxy.errors import BridgeError, UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.answer import READ_SIZE, Answer
from proxy.upstream.egress import egress_error, proxy_for, proxy_refused, ssl_context
from proxy.upstream.pool import Pool
from proxy.upstream.transport import Request


def upstream_error(exc: aiohttp.ClientError) -> BridgeError:
    """An aiohttp failure as ours, by what really happened."""
    if named := egress_error(exc):  # the proxy's or TLS trust's, named
        return named
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamUnreachable("upstream unreachable: connection timed out")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return UpstreamTimeout("upstream did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable("upstream unreachable: could not connect")
    return UpstreamUnreachable("upstream connection lost")


class NetworkTransport:
    """A Transport over the network, with a connection limit."""

    def __init__(self, settings: Settings) -> None:
        self._limit = settings.max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None,  # the wait for a pooled connection is bounded by the first byte's
            connect=settings.connect_timeout + settings.first_byte_timeout,
            sock_connect=settings.connect_timeout,
        )
        self._session: aiohttp.ClientSession | None = None
        self._settings = settings  # and where to, through what (proxy/upstream/egress.py)
        proxy = proxy_for(settings.upstream_url, settings)
        self._proxy: str | None = proxy.address if proxy else None  # user:password@ in it

    def open(self) -> None:
        """Make the session now (at startup), not on the first request: loading the CA
        bundle takes tens of ms."""
        self._client()

    def _client(self) -> aiohttp.ClientSession:
        """aiohttp's session, made on first use, inside the running loop."""
        if self._session is None:
            log = structlog.get_logger("complete-bridge")
            connector = Pool(log, limit=self._limit, ssl=ssl_context(self._settings))
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # no caller's cookies go to the next
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                timeout=self._timeout,
            )
        return self._session

    async def send(self, request: Request) -> Answer:
        headers = [(name.decode("latin-1"), _text(value)) for name, value in request.headers]
        try:
            response = await self._client().request(
                request.method,
                request.url,
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                compress=False,
                proxy=self._proxy,
            )
        except aiohttp.ClientError as exc:
            raise upstream_error(exc) from None
        if response.status == 407 and self._proxy:  # from the proxy of an http:// upstream
            response.close()
            raise proxy_refused(response.status)

        async def close() -> None:
            # Both are synchronous: a cancellation cannot leave the connection open.
            if response.content.is_eof():
                response.release()  # read whole: the connection goes back to the pool
            else:
                response.close()  # cut short: the upstream sees the connection close

        return Answer(
            response.status, response.headers, list(response.raw_headers), _Body(response), close
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _text(value: bytes) -> str:
    """A header value as aiohttp takes it: a str it writes as UTF-8. So UTF-8 bytes go
    as they came; other bytes (obs-text) go as their Latin-1 reading, in UTF-8."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _Body:
    """The answer's body as aiohttp reads it, our errors for its failures. An async
    iterator, not an async generator (see proxy/upstream/guards.py IdleTimeout)."""

    __slots__ = ("_content",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._content = response.content

    def __aiter__(self) -> "_Body":
        return self

    async def __anext__(self) -> bytes:
        content = self._content
        if content.at_eof():  # all read: no read only to learn so (a whole answer's)
            raise StopAsyncIteration
        try:
            chunk = await content.read(READ_SIZE)
        except aiohttp.ClientError as exc:
            raise upstream_error(exc) from None
        if not chunk:
            raise StopAsyncIteration
        return chunk
