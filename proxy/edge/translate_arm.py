"""The translate arm of `POST /v1/complete`: the call sent as `POST /v1/messages`, and
the answer turned back into a legacy completion, whole or streamed (an upstream error
before the first byte is relayed with its status and envelope)."""

import orjson
import structlog

from proxy.edge.downstream import JSON, Client
from proxy.edge.exchange import INTERNAL, Exchange
from proxy.errors import BadUpstreamResponse, BridgeError, error_type_for_status
from proxy.translate.request import Translation
from proxy.translate.response import dumps, error_envelope, message_to_completion
from proxy.translate.stream import CompletionStream, Phase
from proxy.upstream.answer import Answer, closing
from proxy.upstream.client import Upstream
from proxy.upstream.headers import RawHeaders, relayed_headers, translated_headers

SSE = (b"content-type", b"text/event-stream; charset=utf-8")
NO_CACHE = (b"cache-control", b"no-cache")


async def forward(ex: Exchange, translation: Translation) -> None:
    """The call as `POST /v1/messages` to the arm's upstream; its answer, whole or
    streamed, turned back into a completion (an error relayed as the upstream sent it)."""
    target = ex.target
    outbound = target.outbound(translated_headers(ex.headers.raw))
    response = await target.upstream.send("POST", "/v1/messages", outbound, dumps(translation.body))
    try:
        ex.facts["upstream_status"] = response.status_code
        ex.facts["request_id"] = response.headers.get("request-id")
        relayed = relayed_headers(response.raw_headers)
        if 200 <= response.status_code < 400 and response.status_code != 200:
            # Messages answers 200 or an error: a 204 or a redirect has no completion.
            status = response.status_code
            raise BadUpstreamResponse(f"upstream sent unexpected status {status}")
        if response.status_code != 200:
            ex.facts["error_type"] = error_type_for_status(response.status_code)
            await _relay_error(ex.client, target.upstream, response, relayed)
        elif translation.stream:
            await _stream(ex, response, relayed, translation)
        else:
            await _whole(ex, response, relayed, translation)
    finally:
        await closing(response)


def _model(ex: Exchange, translation: Translation) -> str:
    if ex.settings.echo_model:
        return translation.legacy_model
    return translation.body["model"]


async def _whole(
    ex: Exchange, response: Answer, relayed: RawHeaders, translation: Translation
) -> None:
    facts = ex.facts
    try:
        message = orjson.loads(await ex.target.upstream.read_all(response))
        body = message_to_completion(
            message,
            model=_model(ex, translation),
            prefill=translation.conversation.prefill is not None,
            local_stops=translation.local_stops,
            v1=ex.v1,
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
    if ex.settings.log_text:
        facts.update(prompt=translation.prompt, completion=body["completion"])
    if ex.capture is not None:
        ex.capture.set(body["completion"], body["stop_reason"])
    tokens = [
        (f"x-bridge-{kind}-tokens".encode(), str(usage[f"{kind}_tokens"]).encode())
        for kind in ("input", "output")
        if isinstance(usage.get(f"{kind}_tokens"), int)
    ]
    await ex.client.respond(200, [JSON, *relayed, *tokens], dumps(body))


async def _stream(
    ex: Exchange, response: Answer, relayed: RawHeaders, translation: Translation
) -> None:
    client, upstream = ex.client, ex.target.upstream
    stream = CompletionStream(
        model=_model(ex, translation),
        v1=ex.v1,
        prefill=translation.conversation.prefill is not None,
        local_stops=translation.local_stops,
        keep_text=ex.settings.log_text or ex.capture is not None,
        max_event_bytes=ex.settings.max_body_bytes,
    )
    await client.start(200, [SSE, NO_CACHE, *relayed])
    client.fail = lambda exc: stream.fail({"type": exc.error_type, "message": exc.message})
    try:
        async for chunk in upstream.chunks(response):
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
        ex.facts.update(
            upstream_stop_reason=stream.upstream_stop_reason,
            stop_reason=stream.stop_reason,
            stop=stream.stop,
            input_tokens=stream.input_tokens,
            output_tokens=stream.output_tokens,
            error_type=stream.error["type"] if stream.error else None,
        )
        if ex.settings.log_text:
            ex.facts.update(prompt=translation.prompt, completion=stream.text)
    if ex.capture is not None and stream.phase is Phase.FINISHED:
        ex.capture.set(stream.text, stream.stop_reason)
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
