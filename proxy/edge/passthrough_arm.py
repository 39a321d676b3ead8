"""The pass-through arm: a call goes to the arm's upstream as it came (but for a route's
model), and its answer is relayed as it comes, headers and body. It also serves every
path but `POST /v1/complete` (proxy/edge/passthrough.py)."""

from collections.abc import AsyncIterable

import structlog

from proxy.config.settings import Settings
from proxy.edge.arms import LegacyCall
from proxy.edge.downstream import Client
from proxy.errors import BadUpstreamResponse, BridgeError, error_type_for_status
from proxy.obs.record import CompleteRecord, PassthroughRecord
from proxy.rollout.runtime import Target
from proxy.rollout.shadow import Capture, Reply, legacy_answer
from proxy.translate.response import dumps
from proxy.upstream.answer import Answer, closing
from proxy.upstream.headers import RawHeaders, passthrough_headers

# The transport sets content-length for what is sent; an answer read here (a shadow's)
# is asked for as is, not compressed.
SENT_AS_IS = frozenset({b"content-length"})
READ_HERE = frozenset({b"content-length", b"accept-encoding"})


class PassthroughArm:
    """Answers from an upstream that still serves the call as it came."""

    __slots__ = ("log", "settings", "target")

    def __init__(self, target: Target, settings: Settings) -> None:
        self.target, self.settings = target, settings
        self.log = structlog.get_logger("complete-bridge")

    def headers(self, client: RawHeaders, *, drop: frozenset[bytes] = frozenset()) -> RawHeaders:
        """What goes upstream of the client's headers: all but hop-by-hop and client-address
        ones (and `drop`), with the arm's credential."""
        kept = passthrough_headers(client)
        if drop:
            kept = [(name, value) for name, value in kept if name.lower() not in drop]
        return self.target.outbound(kept)

    def _content(self, call: LegacyCall) -> bytes:
        """The body as sent, unless the arm names another model."""
        model = self.target.model
        return bytes(call.raw) if model is None else dumps({**call.body, "model": model})

    def _note(self, call: LegacyCall) -> None:
        model = call.body.get("model")
        record = call.record
        record.legacy_model = model if isinstance(model, str) else None
        record.upstream_model = self.target.model or record.legacy_model
        record.stream = bool(call.body.get("stream"))
        record.adaptations = []  # nothing of it is changed

    async def answer(self, call: LegacyCall, client: Client) -> None:
        self._note(call)
        headers = self.headers(call.headers, drop=SENT_AS_IS)
        response = await self.target.upstream.send(
            "POST", "/v1/complete", headers, self._content(call)
        )
        _note_answer(call.record, response)
        if call.capture is not None:
            call.capture.encoding(response.headers.get("content-encoding"))
        await self.relay(client, response, call.capture)

    async def ask(self, call: LegacyCall) -> tuple[int, Reply | None]:
        body = {**call.body, "stream": False}
        call = LegacyCall(call.headers, body, dumps(body), False, call.record)
        self._note(call)
        headers = self.headers(call.headers, drop=READ_HERE)
        content = self._content(call)
        response = await self.target.upstream.send("POST", "/v1/complete", headers, content)
        _note_answer(call.record, response)
        try:
            data = await self.target.upstream.read_all(response)
            if response.status_code != 200:
                return response.status_code, None
            answer = legacy_answer(data, stream=False)
            if answer is None:
                raise BadUpstreamResponse("upstream sent a response the bridge cannot read")
            return 200, answer
        finally:
            await closing(response)

    async def forward(
        self,
        method: str,
        target: str,
        headers: RawHeaders,
        content: bytes | AsyncIterable[bytes],
        client: Client,
        record: PassthroughRecord,
    ) -> None:
        """Any other call, as it came, to the upstream; its answer relayed as it comes."""
        try:
            response = await self.target.upstream.send(
                method, target, self.headers(headers), content
            )
        except BridgeError:
            # The upstream client reads a streamed body: what stopped it may be ours.
            client.raise_body_failure()
            raise
        record.upstream_status = response.status_code
        record.request_id = response.headers.get("request-id")
        await self.relay(client, response)

    async def relay(self, client: Client, response: Answer, capture: Capture | None = None) -> None:
        """An upstream answer to the client as it comes, headers and body, unchanged."""
        try:
            await client.start(response.status_code, passthrough_headers(response.raw_headers))
            async for chunk in self.target.upstream.chunks(response):
                if capture is not None:
                    capture.add(chunk)
                await client.write(chunk)
            await client.write(b"", more=False)
        except BridgeError as exc:
            if client.status is None:
                raise
            # Headers are out: returning without finishing the body makes the server close
            # the connection, so the client sees a cut body, never a clean end.
            self.log.warning("passthrough.upstream_cut", error=exc.message)
        finally:
            await closing(response)


def _note_answer(record: CompleteRecord, response: Answer) -> None:
    record.upstream_status = response.status_code
    record.request_id = response.headers.get("request-id")
    if response.status_code >= 400:
        record.error_type = error_type_for_status(response.status_code)
