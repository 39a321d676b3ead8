"""The one upstream client the edge calls: a transport (the network, or in memory for
`demo:` and tests), under the retry and guard layers, with the body's idle timeout and
size cap. The layers are drawn in proxy/upstream/transport.py; what headers may cross is
proxy/upstream/headers.py.
"""

from collections.abc import AsyncIterable, AsyncIterator

from proxy.config.settings import DEMO_UPSTREAM, Settings
from proxy.upstream.answer import Answer
from proxy.upstream.bedrock import BedrockMessages
from proxy.upstream.clock import Clock
from proxy.upstream.demo import demo_upstream
from proxy.upstream.guards import Guarded, IdleTimeout, read_capped
from proxy.upstream.headers import RawHeaders
from proxy.upstream.memory import MemoryTransport
from proxy.upstream.network import NetworkTransport
from proxy.upstream.retry import Retrying
from proxy.upstream.sigv4 import Signing
from proxy.upstream.traced import Traced
from proxy.upstream.transport import Request, Transport


class Upstream:
    """The upstream client of one set of settings: timeouts, limits and retries. A
    `transport` given replaces the one the settings name, and is closed by its giver."""

    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.url = settings.upstream_url
        demo = self.url == DEMO_UPSTREAM
        if demo:
            self.url = "http://demo.invalid"
        owned: Transport | None = None
        if transport is None:  # the network, or `demo:` in memory
            owned = MemoryTransport(demo_upstream) if demo else NetworkTransport(settings)
            transport = owned
        self._owned = owned
        self._clock = Clock()  # the timeouts of all its calls, on one timer
        layers: Transport = Guarded(Traced(transport), settings.first_byte_timeout, self._clock)
        if settings.upstream_aws_region:  # Bedrock Runtime: its form, signed
            layers = BedrockMessages(Signing(layers, settings.upstream_aws_region))
        self._layers = Retrying(layers, settings)

    def open(self) -> None:
        """Make the network client now (at startup), not on the first request."""
        if self._owned is not None:
            self._owned.open()

    async def send(
        self,
        method: str,
        target: str,
        headers: RawHeaders,
        content: bytes | AsyncIterable[bytes],
    ) -> Answer:
        """Send and return once the status and headers are in; the caller closes it.
        `target` is the path and query, as the client sent them. The body comes as the
        upstream sent it, content-encoded or not: no transport decodes. A body held in
        memory may be sent again (see proxy/upstream/retry.py); a streamed one is sent
        once."""
        return await self._layers.send(Request(method, self.url + target, headers, content))

    def chunks(self, answer: Answer) -> AsyncIterator[bytes]:
        """The upstream body as it arrives, within idle_timeout between chunks."""
        return IdleTimeout(answer.body, self.settings.idle_timeout, self._clock)

    async def read_all(self, answer: Answer) -> bytes:
        """The whole upstream body; at most max_body_bytes of it."""
        return await read_capped(self.chunks(answer), self.settings.max_body_bytes)

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()
