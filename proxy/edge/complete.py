"""`POST /v1/complete`: the call read, admitted and routed, then answered by its arm:
translated (proxy/edge/translate_arm.py) or passed on as it came (the other paths:
proxy/edge/passthrough.py).

Each request ends in one canonical log line. A client that hangs up cancels the work,
which closes the upstream request at once (nobody pays for tokens no one will read).
"""

import random
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from proxy.config.access import presented_key
from proxy.edge.bridge import Bridge, admit
from proxy.edge.downstream import Client, ClientGone, refuse_declared_over
from proxy.edge.exchange import INTERNAL, Exchange
from proxy.edge.inflight import Hold
from proxy.edge.passthrough import relay
from proxy.edge.translate_arm import forward
from proxy.errors import BridgeError, RequestTooLarge, error_type_for_status
from proxy.rollout.routes import UNROUTED, Call, Choice, choose, fingerprint
from proxy.rollout.runtime import Runtime, Target
from proxy.rollout.shadow import Capture, ShadowCall
from proxy.translate.body import load_body
from proxy.translate.request import Translation, translate_request
from proxy.translate.response import dumps
from proxy.upstream.headers import passthrough_headers


class CompleteEndpoint:
    """`POST /v1/complete`: routed, then translated to `POST /v1/messages` or passed on
    as it came to an upstream that still serves it."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")
        self._random = random.Random()  # noqa: S311 (shadow sampling, not secrets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.bridge.runtime
        client = Client(receive, send)
        headers = Headers(scope=scope)
        version = headers.get("anthropic-version")
        facts: dict[str, Any] = {
            "format": "v1" if version in (None, "2023-01-01") else "v2",
            "route": UNROUTED,  # refused before routing (bad key, body, JSON)
        }
        shadow = None
        hold = self.bridge.inflight.hold(runtime.settings.max_inflight_bytes)
        runtime.active += 1
        self.bridge.call_started()
        try:
            admit(runtime, headers)
            body, raw = await self._read(client, headers, runtime, hold)
            choice, target = self._route(runtime, headers, body, facts)
            if len(raw) > target.max_body_bytes:
                limit = target.max_body_bytes
                raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
            if target.mode == "translate":
                raw = bytearray()  # the bytes as sent are for pass-through only: let them go
            stream = bool(body.get("stream"))
            capture = None if choice.shadow is None else Capture(target.max_body_bytes, stream)
            ex = Exchange(client, headers, runtime, facts, target, capture)
            if target.mode == "translate":
                models = runtime.settings.models
                translation = translate_request(body, models, target=target.model)
                facts.update(_request_facts(translation))
                await client.until_disconnect(lambda: forward(ex, translation))
            else:
                facts.update(_legacy_facts(body, target))
                await client.until_disconnect(lambda: self._pass_on(ex, body, raw))
            if choice.shadow is not None and capture is not None:
                answer = capture.answer()
                shadow = None if answer is None else (choice.shadow, body, answer)
        except ClientGone:
            pass
        except BridgeError as exc:  # ShuttingDown too: a call cut at the drain deadline
            facts["error_type"] = exc.error_type
            await client.error(exc)
        except Exception:
            self.log.exception("complete.internal_error")
            if client.status is None:
                await client.error(BridgeError(INTERNAL["message"]))
        finally:
            hold.release()
            runtime.active -= 1
            self.bridge.call_ended()
            self.bridge.record(
                "complete",
                {
                    "status": client.status,
                    "client_disconnected": client.disconnected,
                    **facts,
                    **client.timings(),
                },
            )
        if shadow is not None and not facts.get("error_type"):
            arm, body, answer = shadow
            facts = _shadow_facts(facts, arm.mode)
            call = ShadowCall(runtime, runtime.target(arm), body, headers.raw, answer, facts)
            self.bridge.shadows.start(call)

    async def _read(
        self, client: Client, headers: Headers, runtime: Runtime, hold: Hold
    ) -> tuple[dict[str, Any], bytearray]:
        """The body, as JSON and as sent; at most the largest limit of any arm (each
        arm then holds the call to its own). Taken from the in-flight budget: whole
        before it is read when its length is declared, else as it arrives."""
        limit = runtime.max_body_bytes
        declared = refuse_declared_over(headers, limit)
        if declared is not None:
            hold.take(declared)
        raw = await client.read_body(limit, None if declared is not None else hold)
        return load_body(raw), raw

    def _route(
        self, runtime: Runtime, headers: Headers, body: dict[str, Any], facts: dict[str, Any]
    ) -> tuple[Choice, Target]:
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        model = body.get("model")
        call = Call(
            model=model if isinstance(model, str) else "",
            caller=fingerprint(presented_key(headers.raw)),
            user=user if isinstance(user, str) else None,
            headers=headers,
        )
        sample = self._random.random() * 100
        choice = choose(runtime.routes, call, runtime.settings.force_mode, sample)
        target = runtime.target(choice.arm)
        facts.update(
            route=choice.route.name, arm=choice.arm_name, mode=target.mode, caller=call.caller
        )
        if isinstance(model, str):  # named even if the call is refused after this
            facts["legacy_model"] = model
        return choice, target

    async def _pass_on(self, ex: Exchange, body: dict[str, Any], raw: bytearray) -> None:
        """The legacy call as it came (but for a route's model) to the arm's upstream's
        /v1/complete; its answer relayed as it comes."""
        target, client = ex.target, ex.client
        content = bytes(raw) if target.model is None else dumps({**body, "model": target.model})
        kept = [
            (name, value)
            for name, value in passthrough_headers(ex.headers.raw)
            if name.lower() != b"content-length"  # the transport sets it for what is sent
        ]
        response = await target.upstream.send(
            "POST", "/v1/complete", target.outbound(kept), content, raw=True
        )
        ex.facts["upstream_status"] = response.status_code
        ex.facts["request_id"] = response.headers.get("request-id")
        if response.status_code >= 400:
            ex.facts["error_type"] = error_type_for_status(response.status_code)
        if ex.capture is not None:
            ex.capture.encoding(response.headers.get("content-encoding"))
        await relay(client, target.upstream, response, self.log, ex.capture)


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


def _legacy_facts(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """What the log says of a call passed on as it came (nothing of it is parsed)."""
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return {
        "legacy_model": model,
        "upstream_model": target.model or model,
        "stream": bool(body.get("stream")),
        "adaptations": [],
    }


def _shadow_facts(facts: dict[str, Any], mode: str) -> dict[str, Any]:
    keys = ("route", "caller", "legacy_model", "format", "stream")
    return {
        **{key: facts.get(key) for key in keys},
        "primary_mode": facts.get("mode"),
        "secondary_mode": mode,
    }
