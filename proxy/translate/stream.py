"""A Messages event stream becomes a legacy completion stream, v1 or v2: the upstream's
events are read here, in the order the Messages API sends them, and written as the
legacy events of completion_events.py.

Failures after the 200 end the stream with an error event (v2) or an error line and
`[DONE]` (v1), never a clean end.
"""

import enum
from collections.abc import Sequence
from typing import Any

import orjson

from proxy.translate.completion_events import CompletionEvents
from proxy.translate.response import completion_id, legacy_stop, with_leading_space
from proxy.translate.sse import ServerSentEvent, SSEDecoder
from proxy.translate.stops import StopScanner
from proxy.wire import ErrorDetail

CONNECTION_LOST: ErrorDetail = {"type": "api_error", "message": "upstream connection lost"}


class Phase(enum.Enum):
    WAITING = "waiting"  # for message_start
    STREAMING = "streaming"
    FINISHED = "finished"  # the last completion event is sent
    FAILED = "failed"  # an error event is sent


class StreamProtocolError(Exception):
    """The upstream's events came in an order or shape the Messages API never sends."""


class CompletionStream:
    """`feed(upstream bytes) -> legacy bytes`, then `flush()` when the upstream ends."""

    def __init__(
        self,
        *,
        model: str,
        v1: bool,
        prefill: bool,
        local_stops: Sequence[str] = (),
        keep_text: bool = False,
        max_event_bytes: int | None = None,
    ) -> None:
        self.phase = Phase.WAITING
        self.done = False  # FINISHED or FAILED (read once an event: a field, not a property)
        self.model = model
        self.v1 = v1
        self._prefill = prefill
        self._decoder = SSEDecoder(max_event_bytes)
        self._stops = StopScanner(local_stops) if local_stops else None
        self._id = ""
        self._sent_text = False
        self._keep_text = v1 or keep_text  # v1 repeats the whole completion in every event
        self._parts: list[str] = []
        self._out = CompletionEvents(v1=v1)
        self._text_blocks: set[int] = set()
        # What the log wants to know.
        self.upstream_stop_reason: str | None = None
        self.upstream_stop_sequence: str | None = None
        self.stop_reason: str | None = None
        self.stop: str | None = None
        self.error: ErrorDetail | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    @property
    def text(self) -> str:
        """The completion sent so far (kept for v1, or when asked to)."""
        return "".join(self._parts)

    def feed(self, chunk: bytes) -> bytes:
        out = self._translate(self._decoder.decode(chunk))
        if self._decoder.too_large:
            limit = self._decoder.max_event_bytes
            message = f"upstream stream event is larger than {limit} bytes"
            out += self.fail({"type": "api_error", "message": message})
        return out

    def flush(self) -> bytes:
        """The upstream ended: finish what is pending; a cut stream becomes an error. An
        event left without its blank line counts if its data is whole; data cut short is
        the cut itself, not bad upstream data."""
        out = self._translate([e for e in self._decoder.flush() if _is_json(e.data)])
        if not self.done:
            out += self.fail(CONNECTION_LOST)
        return out

    def fail(self, error: ErrorDetail) -> bytes:
        """End the stream with an error (e.g. the upstream timed out or vanished)."""
        if self.done:
            return b""
        self.phase, self.error, self.done = Phase.FAILED, error, True
        return self._out.error(error)

    def _translate(self, events: list[ServerSentEvent]) -> bytes:
        out = []
        for event in events:
            if self.done:
                break
            try:
                out.append(self._event(event))
            except StreamProtocolError as exc:
                out.append(self._protocol_error(str(exc)))
            except (AttributeError, TypeError):  # a field of the wrong JSON type
                out.append(self._protocol_error(f"malformed {event.event} event"))
        if not self.done:
            out.append(self._out.line())
        return b"".join(out)

    def _protocol_error(self, what: str) -> bytes:
        return self.fail({"type": "api_error", "message": f"bad upstream stream: {what}"})

    def _event(self, event: ServerSentEvent) -> bytes:
        try:
            data = orjson.loads(event.data)
        except ValueError:
            raise StreamProtocolError(f"{event.event} event data is not JSON") from None
        if not isinstance(data, dict):
            raise StreamProtocolError(f"{event.event} event data is not an object")
        kind = data.get("type", event.event)
        if kind == "ping":
            return self._out.ping()
        if kind == "error":
            return self.fail(_error_detail(data.get("error")))
        if kind == "message_start":
            return self._start(data)
        if kind not in (
            "content_block_start",
            "content_block_delta",
            "message_delta",
            "message_stop",
        ):
            return b""  # content_block_stop, and event types newer than this code
        if self.phase is not Phase.STREAMING:
            raise StreamProtocolError(f"{kind} before message_start")
        if kind == "content_block_start":
            block = _object(data, "content_block")
            if block.get("type") == "text":
                self._text_blocks.add(data.get("index", 0))
                return self._text(str(block.get("text", "")))
            return b""
        if kind == "content_block_delta":
            delta = _object(data, "delta")
            if delta.get("type") == "text_delta" and data.get("index", 0) in self._text_blocks:
                return self._text(str(delta.get("text", "")))
            return b""
        if kind == "message_delta":
            delta = _object(data, "delta")
            self.upstream_stop_reason = delta.get("stop_reason")
            self.upstream_stop_sequence = delta.get("stop_sequence")
            self.output_tokens = data.get("usage", {}).get("output_tokens", self.output_tokens)
            return b""
        return self._finish(*legacy_stop(self.upstream_stop_reason, self.upstream_stop_sequence))

    def _start(self, data: dict[str, Any]) -> bytes:
        if self.phase is not Phase.WAITING:
            raise StreamProtocolError("a second message_start")
        message = _object(data, "message")
        self._id = completion_id(str(message.get("id", "")))
        usage = message.get("usage") or {}
        self.input_tokens = usage.get("input_tokens")
        self.output_tokens = usage.get("output_tokens")
        self._out.start(self._id, self.model)
        self.phase = Phase.STREAMING
        return b""

    def _text(self, text: str) -> bytes:
        stop = None
        if self._stops is not None:
            text, stop = self._stops.feed(text)
        out = self._emit(text)
        if stop is not None:
            out += self._finish("stop_sequence", stop)
        return out

    def _emit(self, text: str) -> bytes:
        if not text:
            return b""
        if not self._sent_text:
            self._sent_text = True
            text = with_leading_space(text, prefill=self._prefill)
        if self._keep_text:
            self._parts.append(text)
        return self._out.text(text)

    def _finish(self, stop_reason: str, stop: str | None) -> bytes:
        out = self._emit(self._stops.flush()) if self._stops is not None else b""
        self.phase, self.stop_reason, self.stop = Phase.FINISHED, stop_reason, stop
        self.done = True
        text = self.text if self.v1 else ""
        return out + self._out.last(self._id, text, stop_reason, self.model, stop)


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise StreamProtocolError(f"{data.get('type')} has no {key} object")
    return value


def _is_json(data: str) -> bool:
    try:
        orjson.loads(data)
    except ValueError:
        return False
    return True


def _error_detail(error: Any) -> ErrorDetail:
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return {"type": error["type"], "message": str(error.get("message", ""))}
    return {"type": "api_error", "message": "upstream sent an error event without details"}


__all__ = ["CompletionStream", "Phase", "StreamProtocolError"]
