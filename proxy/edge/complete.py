"""`POST /v1/complete`: the call read, admitted and routed, then answered by its arm
(proxy/edge/arms.py): translated, or passed on as it came. A shadowed call is asked
again of its secondary arm once answered. The request context (proxy/edge/context.py)
around it answers errors and writes the call's one log line.

A client that hangs up cancels the work, which closes the upstream request at once
(nobody pays for tokens no one will read).
"""

import random
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

from proxy.config.access import presented_key
from proxy.edge.arms import LegacyCall
from proxy.edge.bridge import Bridge, admit, arm
from proxy.edge.context import Inbound
from proxy.edge.downstream import refuse_declared_over
from proxy.edge.shadows import ShadowCall
from proxy.errors import RequestTooLarge
from proxy.obs.record import CompleteRecord, ShadowRecord
from proxy.rollout.routes import Arm, Call, Choice, choose, fingerprint
from proxy.rollout.runtime import Runtime, Target
from proxy.rollout.shadow import Capture, Reply
from proxy.translate.body import load_body
from proxy.upstream.headers import RawHeaders


class CompleteEndpoint:
    """`POST /v1/complete`, in its request context."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._random = random.Random()  # noqa: S311 (shadow sampling, not secrets)

    def record(self, scope: Scope, headers: Headers) -> CompleteRecord:
        version = headers.get("anthropic-version")
        return CompleteRecord(format="v1" if version in (None, "2023-01-01") else "v2")

    async def handle(self, inbound: Inbound[CompleteRecord]) -> None:
        runtime, headers, client, record = (
            inbound.runtime, inbound.headers, inbound.client, inbound.record
        )  # fmt: skip
        hold = self.bridge.inflight.hold(runtime.settings.max_inflight_bytes)
        try:
            self.admit(runtime, headers)
            # The body, at most the largest limit of any arm (each arm then holds the call
            # to its own), taken from the in-flight budget: whole before it is read when
            # its length is declared, else as it arrives.
            declared = refuse_declared_over(headers, runtime.max_body_bytes)
            if declared is not None:
                hold.take(declared)
            read = await client.read_body(
                runtime.max_body_bytes, None if declared is not None else hold
            )
            body, raw, sent = self.load(inbound, read)
            choice, target = self._route(runtime, headers, body, record)
            inbound.bind(route=choice.route.name)
            if len(raw) > target.max_body_bytes:
                limit = target.max_body_bytes
                raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
            if target.mode == "translate":
                raw = bytearray()  # the bytes as sent are for pass-through only: let them go
            capture = None
            if choice.shadow is not None:
                capture = Capture(target.max_body_bytes, bool(body.get("stream")))
            call = LegacyCall(sent, body, raw, record.format == "v1", record, capture)
            answering = arm(target, runtime.settings)
            await client.until_disconnect(lambda: answering.answer(call, client))
        finally:
            hold.release()
        if choice.shadow is not None and capture is not None and record.error_type is None:
            primary = capture.answer()
            if primary is not None:
                self._shadow(runtime, choice.shadow, call, primary)

    def admit(self, runtime: Runtime, headers: Headers) -> None:
        """Refuse a caller the runtime's access does not admit."""
        admit(runtime, headers)

    def caller_key(self, headers: Headers) -> bytes | None:
        """What identifies the caller (its fingerprint is logged and matched by routes)."""
        return presented_key(headers.raw)

    def load(
        self, inbound: Inbound[CompleteRecord], raw: bytearray
    ) -> tuple[dict[str, Any], bytes | bytearray, RawHeaders]:
        """The call's legacy body, its bytes as a pass-through sends them, and the
        headers its arm gets (another API's endpoint turns its own into these)."""
        return load_body(raw), raw, inbound.headers.raw

    def _route(
        self, runtime: Runtime, headers: Headers, body: dict[str, Any], record: CompleteRecord
    ) -> tuple[Choice, Target]:
        """The call's route and arm (and that arm's target), into the record."""
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        model = body.get("model")
        call = Call(
            model=model if isinstance(model, str) else "",
            caller=fingerprint(self.caller_key(headers)),
            user=user if isinstance(user, str) else None,
            headers=headers,
        )
        sample = self._random.random() * 100
        choice = choose(runtime.routes, call, runtime.settings.force_mode, sample)
        target = runtime.target(choice.arm)
        record.route, record.arm = choice.route.name, choice.arm_name
        record.mode, record.caller = target.mode, call.caller
        if isinstance(model, str):  # named even if the call is refused after this
            record.legacy_model = model
        return choice, target

    def _shadow(
        self, runtime: Runtime, secondary_arm: Arm, call: LegacyCall, primary: Reply
    ) -> None:
        target = runtime.target(secondary_arm)
        primary_record = call.record
        record = ShadowRecord(
            route=primary_record.route,
            caller=primary_record.caller,
            legacy_model=primary_record.legacy_model,
            format=primary_record.format,
            stream=primary_record.stream,
            primary_mode=primary_record.mode,
            secondary_mode=target.mode,
        )
        # The secondary's own facts (its model, tokens) go to a record of its own.
        asked = LegacyCall(call.headers, call.body, b"", False, CompleteRecord(format="v2"))
        secondary = arm(target, runtime.settings)
        self.bridge.shadows.start(
            ShadowCall(runtime, lambda: secondary.ask(asked), primary, record)
        )
