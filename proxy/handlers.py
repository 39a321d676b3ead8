"""The endpoints: where the pure translation core meets the client and the upstream.

Each request ends in one canonical log line. A client that hangs up cancels the work,
which closes the upstream request at once (nobody pays for tokens no one will read).
"""

from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from proxy.access import Access
from proxy.config import Settings
from proxy.downstream import JSON, Client, ClientGone, refuse_declared_over
from proxy.errors import (
    BadUpstreamResponse,
    BridgeError,
    InvalidRequest,
    Unauthorized,
    error_type_for_status,
)
from proxy.translate.request import Translation, translate_request
from proxy.translate.response import dumps, error_envelope, message_to_completion
from proxy.translate.stream import CompletionStream
from proxy.upstream import (
    Answer,
    RawHeaders,
    Upstream,
    closing,
    passthrough_headers,
    relayed_headers,
    translated_headers,
)
from proxy.wire import ErrorDetail

SSE = (b"content-type", b"text/event-stream; charset=utf-8")
NO_CACHE = (b"cache-control", b"no-cache")
INTERNAL: ErrorDetail = {
    "type": "api_error",
    "message": "internal error in the bridge; see its log",
}


@dataclass(frozen=True, slots=True)
class Bridge:
    """What every endpoint shares; built once by create_app."""

    settings: Settings
    upstream: Upstream
    access: Access

    def admit(self, headers: Headers) -> None:
        if not self.access.admits(headers.raw):
            raise Unauthorized("invalid x-api-key")


class CompleteEndpoint:
    """`POST /v1/complete`, translated to `POST /v1/messages`."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = Client(receive, send)
        headers = Headers(scope=scope)
        version = headers.get("anthropic-version")
        facts: dict[str, Any] = {"format": "v1" if version in (None, "2023-01-01") else "v2"}
        try:
            self.bridge.admit(headers)
            translation = await self._read(client, headers)
            facts.update(_request_facts(translation))
            await client.until_disconnect(
                lambda: self._forward(client, headers, translation, facts)
            )
        except ClientGone:
            pass
        except BridgeError as exc:
            facts["error_type"] = exc.error_type
            if client.status is None:
                await client.error(exc)
        except Exception:
            self.log.exception("complete.internal_error")
            if client.status is None:
                await client.error(BridgeError(INTERNAL["message"]))
        finally:
            self.log.info(
                "complete",
                status=client.status,
                client_disconnected=client.disconnected,
                **facts,
                **client.timings(),
            )

    async def _read(self, client: Client, headers: Headers) -> Translation:
        limit = self.bridge.settings.max_body_bytes
        refuse_declared_over(headers, limit)
        raw = await client.read_body(limit)
        try:
            body = orjson.loads(raw)
        except ValueError as exc:  # also nesting past 1024 levels, and unpaired surrogates
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
        return translate_request(body, self.bridge.settings.models)

    async def _forward(
        self, client: Client, headers: Headers, translation: Translation, facts: dict[str, Any]
    ) -> None:
        outbound = self.bridge.access.outbound(translated_headers(headers.raw))
        response = await self.bridge.upstream.send(
            "POST", "/v1/messages", outbound, dumps(translation.body)
        )
        try:
            facts["upstream_status"] = response.status_code
            facts["request_id"] = response.headers.get("request-id")
            relayed = relayed_headers(response.raw_headers)
            if response.status_code != 200:
                await _relay_error(client, self.bridge.upstream, response, relayed)
            elif translation.stream:
                await self._stream(client, response, relayed, translation, facts)
            else:
                await self._whole(client, response, relayed, translation, facts)
        finally:
            await closing(response)

    def _model(self, translation: Translation) -> str:
        if self.bridge.settings.echo_model:
            return translation.legacy_model
        return translation.body["model"]

    async def _whole(
        self,
        client: Client,
        response: Answer,
        relayed: RawHeaders,
        translation: Translation,
        facts: dict[str, Any],
    ) -> None:
        try:
            message = orjson.loads(await self.bridge.upstream.read_all(response))
            body = message_to_completion(
                message,
                model=self._model(translation),
                prefill=translation.conversation.prefill is not None,
                local_stops=translation.local_stops,
                v1=facts["format"] == "v1",
            )
            usage = message.get("usage") or {}
            facts.update(
                upstream_stop_reason=message.get("stop_reason"),
                input_tokens=usage.get("input_tokens"),
                output_tokens=usage.get("output_tokens"),
            )
        except (ValueError, AttributeError, TypeError):
            raise BadUpstreamResponse("upstream sent a response the bridge cannot read") from None
        facts.update(stop_reason=body["stop_reason"], stop=body["stop"])
        if self.bridge.settings.log_text:
            facts.update(prompt=translation.prompt, completion=body["completion"])
        tokens = [
            (f"x-bridge-{kind}-tokens".encode(), str(usage[f"{kind}_tokens"]).encode())
            for kind in ("input", "output")
            if isinstance(usage.get(f"{kind}_tokens"), int)
        ]
        await client.respond(200, [JSON, *relayed, *tokens], dumps(body))

    async def _stream(
        self,
        client: Client,
        response: Answer,
        relayed: RawHeaders,
        translation: Translation,
        facts: dict[str, Any],
    ) -> None:
        stream = CompletionStream(
            model=self._model(translation),
            v1=facts["format"] == "v1",
            prefill=translation.conversation.prefill is not None,
            local_stops=translation.local_stops,
            keep_text=self.bridge.settings.log_text,
            max_event_bytes=self.bridge.settings.max_body_bytes,
        )
        await client.start(200, [SSE, NO_CACHE, *relayed])
        try:
            async for chunk in self.bridge.upstream.chunks(response):
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
            self.log.exception("complete.stream_internal_error")
            await client.write(stream.fail(INTERNAL))
        finally:
            facts.update(
                upstream_stop_reason=stream.upstream_stop_reason,
                stop_reason=stream.stop_reason,
                stop=stream.stop,
                input_tokens=stream.input_tokens,
                output_tokens=stream.output_tokens,
                error_type=stream.error["type"] if stream.error else None,
            )
            if self.bridge.settings.log_text:
                facts.update(prompt=translation.prompt, completion=stream.text)
        await client.write(b"", more=False)


async def _relay_error(
    client: Client, upstream: Upstream, response: Answer, relayed: RawHeaders
) -> None:
    """An upstream error before the first byte: same status, envelope and retry headers."""
    body = await upstream.read_all(response)
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


def _request_facts(translation: Translation) -> dict[str, Any]:
    conversation = translation.conversation
    return {
        "legacy_model": translation.legacy_model,
        "upstream_model": translation.body["model"],
        "stream": translation.stream,
        "turns": conversation.turns,
        "system": conversation.system is not None,
        "prefill": conversation.prefill is not None,
        "adaptations": list(translation.adaptations),
    }


class PassthroughEndpoint:
    """Every other path goes to the upstream unchanged, streamed both ways."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = Client(receive, send)
        path = scope.get("raw_path") or scope["path"].encode()
        target = path.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = Headers(scope=scope)
        forwarded = self.bridge.access.outbound(passthrough_headers(headers.raw))
        limit = self.bridge.settings.max_body_bytes
        streamed = "content-length" in headers or "transfer-encoding" in headers

        async def forward() -> None:
            content = client.body_chunks(limit) if streamed else await client.read_body(limit)
            try:
                response = await self.bridge.upstream.send(
                    scope["method"], target, forwarded, content, raw=True
                )
            except BridgeError:
                # The upstream client reads a streamed body: what stopped it may be ours.
                client.raise_body_failure()
                raise
            try:
                await client.start(response.status_code, passthrough_headers(response.raw_headers))
                async for chunk in self.bridge.upstream.chunks(response):
                    await client.write(chunk)
                await client.write(b"", more=False)
            except BridgeError as exc:
                if client.status is None:
                    raise
                # Headers are out: returning without finishing the body makes the server
                # close the connection, so the client sees a cut body, never a clean end.
                self.log.warning("passthrough.upstream_cut", error=exc.message)
            finally:
                await closing(response)

        try:
            self.bridge.admit(headers)
            if not target.startswith("/"):  # the upstream host is only ever the configured one
                raise InvalidRequest("the request target must be a path")
            refuse_declared_over(headers, limit)
            await client.until_disconnect(forward)
        except ClientGone:
            pass
        except BridgeError as exc:
            if client.status is None:
                await client.error(exc)
        finally:
            self.log.info(
                "passthrough",
                method=scope["method"],
                path=scope["path"],
                status=client.status,
                client_disconnected=client.disconnected,
                **client.timings(),
            )
