"""A Messages answer becomes a legacy completion: text, stop fields, ids, error envelopes."""

import json
from collections.abc import Sequence
from typing import Any

import orjson

from proxy.translate.stops import find_stop
from proxy.wire import Completion, ErrorEnvelope, MessagesResponse

HUMAN_STOP = "\n\nHuman:"

# Messages stop_reason -> legacy (stop_reason, stop); None as stop means "the matched one".
_STOP_REASONS: dict[str, tuple[str, str | None]] = {
    "end_turn": ("stop_sequence", HUMAN_STOP),
    "max_tokens": ("max_tokens", None),
    "model_context_window_exceeded": ("max_tokens", None),
}


def legacy_stop(stop_reason: str | None, stop_sequence: str | None) -> tuple[str, str | None]:
    """The legacy stop_reason and stop for a Messages stop_reason (refusal etc. -> no stop)."""
    if stop_reason == "stop_sequence":
        return "stop_sequence", stop_sequence
    return _STOP_REASONS.get(stop_reason or "", ("stop_sequence", None))


def completion_id(message_id: str) -> str:
    """`msg_01ab` -> `compl_01ab`."""
    return "compl_" + message_id.partition("_")[2] if "_" in message_id else "compl_" + message_id


def completion(
    id: str, text: str, stop_reason: str | None, model: str, stop: str | None, *, v1: bool
) -> Completion:
    """A legacy completion body (or stream event) with the keys in the old API's order."""
    body: Completion = {
        "type": "completion",
        "id": id,
        "completion": text,
        "stop_reason": stop_reason,  # type: ignore[typeddict-item]
        "model": model,
        "stop": stop,
        "log_id": id,
    }
    if v1:
        body["truncated"] = False
        body["exception"] = None
    return body


def with_leading_space(text: str, *, prefill: bool) -> str:
    """The old API's completion began with a space after `\\n\\nAssistant:`; Messages' does not."""
    if prefill or not text or text[0].isspace():
        return text
    return " " + text


def message_text(message: MessagesResponse) -> str:
    return "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")


def message_to_completion(
    message: MessagesResponse,
    *,
    model: str,
    prefill: bool,
    local_stops: Sequence[str],
    v1: bool,
) -> Completion:
    text = message_text(message)
    reason, stop = legacy_stop(message.get("stop_reason"), message.get("stop_sequence"))
    match = find_stop(text, local_stops) if local_stops else None
    if match is not None:
        text, reason, stop = text[: match[0]], "stop_sequence", match[1]
    return completion(
        completion_id(message.get("id", "")),
        with_leading_space(text, prefill=prefill),
        reason,
        model,
        stop,
        v1=v1,
    )


def error_envelope(error_type: str, message: str) -> ErrorEnvelope:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def dumps(value: Any) -> bytes:
    """Compact JSON as the API sends it (UTF-8, not ASCII-escaped)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits, which orjson refuses and JSON allows
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
