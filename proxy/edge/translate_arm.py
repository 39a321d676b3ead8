"""The translate arm: the legacy call sent as `POST /v1/messages`, and the answer turned
back into a legacy completion, whole or streamed (an upstream error before the first
byte is relayed with its status and envelope)."""

from typing import Any

import orjson
import structlog

from proxy.config.settings import Settings
from proxy.edge.arms import LegacyCall
from proxy.edge.downstream import JSON, Client
from proxy.errors import (
    INTERNAL_ERROR,
    BadUpstreamResponse,
    BridgeError,
    as_error_type,
    error_type_for_status,
)
from proxy.obs.record import CompleteRecord
from proxy.rollout.runtime import Target
from proxy.rollout.shadow import Reply
from proxy.translate.request import Translation, translate_request
from proxy.translate.response import dumps, error_envelope, message_to_completion
from proxy.translate.stream import CompletionStream, Phase
from proxy.upstream.answer import Answer, closing
from proxy.upstream.headers import RawHeaders, relayed_headers, translated_headers
from proxy.wire import Completion, ErrorDetail

SSE = (b"content-type", b"text/event-stream; charset=utf-8")
NO_CACHE = (b"cache-control", b"no-cache")
INTERNAL: ErrorDetail = {"type": "api_error", "message": INTERNAL_ERROR}
UNREADABLE = "upstream sent a response the bridge cannot read"


class TranslateArm:
    """Answers on the Messages API, as the arm's target says."""

    __slots__ = ("settings", "target")

    def __init__(self, target: Target, settings: Settings) -> None:
        self.target, self.settings = target, settings

    def _translate(self, call: LegacyCall, body: dict[str, Any]) -> Translation:
        translation = translate_request(body, self.settings.models, target=self.target.model)
        record, conversation = call.record, translation.conversation
        record.legacy_model = translation.legacy_model
        record.upstream_model = translation.body["model"]
        record.stream = translation.stream
        record.turns = conversation.turns
        record.system = conversation.system is not None
        record.prefill = conversation.prefill is not None
        record.adaptations = list(translation.adaptations)
        return translation

    async def _send(self, call: LegacyCall, translation: Translation) -> Answer:
        outbound = self.target.outbound(translated_headers(call.headers))
        upstream = self.target.upstream
        response = await upstream.send("POST", "/v1/messages", outbound, dumps(translation.body))
        call.record.upstream_status = response.status_code
        call.record.request_id = response.headers.get("request-id")
        if 200 <= response.status_code < 400 and response.status_code != 200:
            # Messages answers 200 or an error: a 204 or a redirect has no completion.
            await closing(response)
            status = response.status_code
            raise BadUpstreamResponse(f"upstream sent unexpected status {status}")
        if response.status_code != 200:
            call.record.error_type = error_type_for_status(response.status_code)
        return response

    async def answer(self, call: LegacyCall, client: Client) -> None:
        translation = self._translate(call, call.body)
        response = await self._send(call, translation)
        try:
            relayed = relayed_headers(response.raw_headers)
            if response.status_code != 200:
                await self._relay_error(client, response, relayed)
            elif translation.stream:
                await self._stream(call, client, response, relayed, translation)
            else:
                await self._whole(call, client, response, relayed, translation)
        finally:
            await closing(response)

    async def ask(self, call: LegacyCall) -> tuple[int, Reply | None]:
        translation = self._translate(call, {**call.body, "stream": False})
        response = await self._send(call, translation)
        try:
            data = await self.target.upstream.read_all(response)
            if response.status_code != 200:
                return response.status_code, None
            completion = self._completion(data, translation, call.record, v1=False)
            return 200, (completion["completion"], completion["stop_reason"])
        finally:
            await closing(response)

    def _model(self, translation: Translation) -> str:
        return translation.legacy_model if self.settings.echo_model else translation.body["model"]

    def _completion(
        self, data: bytes, translation: Translation, record: CompleteRecord, *, v1: bool
    ) -> Completion:
        """The legacy completion of a whole Messages answer; its facts into `record`."""
        try:
            message = orjson.loads(data)
            body = message_to_completion(
                message,
                model=self._model(translation),
                prefill=translation.conversation.prefill is not None,
                local_stops=translation.local_stops,
                v1=v1,
            )
            usage = message.get("usage") or {}
            record.upstream_stop_reason = message.get("stop_reason")
            for kind in ("input", "output"):
                count = usage.get(f"{kind}_tokens")
                setattr(record, f"{kind}_tokens", count if isinstance(count, int) else None)
        except (ValueError, AttributeError, TypeError):
            raise BadUpstreamResponse(UNREADABLE) from None
        record.stop_reason, record.stop = body["stop_reason"], body["stop"]
        return body

    async def _whole(
        self,
        call: LegacyCall,
        client: Client,
        response: Answer,
        relayed: RawHeaders,
        translation: Translation,
    ) -> None:
        data = await self.target.upstream.read_all(response)
        record = call.record
        body = self._completion(data, translation, record, v1=call.v1)
        if self.settings.log_text:
            record.prompt, record.completion = translation.prompt, body["completion"]
        if call.capture is not None:
            call.capture.set(body["completion"], body["stop_reason"])
        tokens = [
            (f"x-bridge-{kind}-tokens".encode(), str(count).encode())
            for kind, count in (("input", record.input_tokens), ("output", record.output_tokens))
            if count is not None
        ]
        await client.respond(200, [JSON, *relayed, *tokens], dumps(body))

    async def _stream(
        self,
        call: LegacyCall,
        client: Client,
        response: Answer,
        relayed: RawHeaders,
        translation: Translation,
    ) -> None:
        stream = CompletionStream(
            model=self._model(translation),
            v1=call.v1,
            prefill=translation.conversation.prefill is not None,
            local_stops=translation.local_stops,
            keep_text=self.settings.log_text or call.capture is not None,
            max_event_bytes=self.target.max_body_bytes,
        )
        await client.start(200, [SSE, NO_CACHE, *relayed])
        client.fail = lambda exc: stream.fail({"type": exc.error_type, "message": exc.message})
        try:
            async for chunk in self.target.upstream.chunks(response):
                out = stream.feed(chunk)
                if out:
                    await client.write(out)
                if stream.done:
                    break
            else:
                await client.write(stream.flush())
        except BridgeError as exc:  # the upstream failed after our 200
            await client.write(stream.fail({"type": exc.error_type, "message": exc.message}))
        except Exception:  # a bug of ours must still end the stream as a failure
            structlog.get_logger("complete-bridge").exception("complete.stream_internal_error")
            await client.write(stream.fail(INTERNAL))
        finally:
            record = call.record
            record.upstream_stop_reason = stream.upstream_stop_reason
            record.stop_reason, record.stop = stream.stop_reason, stream.stop
            record.input_tokens, record.output_tokens = stream.input_tokens, stream.output_tokens
            record.error_type = as_error_type(stream.error["type"]) if stream.error else None
            if self.settings.log_text:
                record.prompt, record.completion = translation.prompt, stream.text
        if call.capture is not None and stream.phase is Phase.FINISHED:
            call.capture.set(stream.text, stream.stop_reason)
        await client.write(b"", more=False)

    async def _relay_error(self, client: Client, response: Answer, relayed: RawHeaders) -> None:
        """An upstream error before the first byte: same status, envelope and retry headers."""
        body = await self.target.upstream.read_all(response)
        try:
            envelope = orjson.loads(body)
            usable = envelope.get("type") == "error" and isinstance(envelope.get("error"), dict)
        except (ValueError, AttributeError):
            usable = False
        if not usable:
            status = response.status_code
            text = body.decode("utf-8", "replace").strip()[:200] or "no body"
            body = dumps(error_envelope(error_type_for_status(status), f"upstream said: {text}"))
        await client.respond(response.status_code, [JSON, *relayed], body)
