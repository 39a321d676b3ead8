"""A Messages event stream becomes a legacy completion stream, v1 or v2.

    v2 (anthropic-version 2023-06-01): `event: completion` with the new text of each
       delta; pings kept; a last event with empty text and the stop fields.
    v1 (2023-01-01 or no version): data-only lines, each with the whole completion so
       far and `truncated`/`exception`; the last has the stop fields; then `[DONE]`.
       At most one such line per upstream chunk: a client that reads slowly gets fewer,
       longer lines, not a pile of copies of its growing text. The newest piece of text
       is held back until more comes or the stream ends, so the last line always brings
       new text, as the old API's did (clients that diff lines rely on it).

Failures after the 200 end the stream with an error event (v2) or an error line and
`[DONE]` (v1), never a clean end.
"""

import enum
from collections.abc import Sequence
from typing import Any

import orjson

from proxy.translate.response import (
    completion,
    completion_id,
    dumps,
    error_envelope,
    legacy_stop,
    with_leading_space,
)
from proxy.translate.sse import ServerSentEvent, SSEDecoder, encode
from proxy.translate.stops import StopScanner
from proxy.wire import ErrorDetail

V2_PING = encode(b'{"type": "ping"}', "ping")
V1_DONE = b"data: [DONE]\n\n"
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
        self.model = model
        self.v1 = v1
        self._prefill = prefill
        self._decoder = SSEDecoder(max_event_bytes)
        self._stops = StopScanner(local_stops) if local_stops else None
        self._id = ""
        self._sent_text = False
        self._keep_text = v1 or keep_text  # v1 repeats the whole completion in every event
        self._parts: list[str] = []
        self._v1_json = bytearray()  # v1: the text lines may carry, JSON-encoded, unquoted
        self._v1_held = b""  # v1: the newest piece, encoded, held back from the lines
        self._v1_pending = False  # v1: _v1_json has grown since the last line
        self._text_blocks: set[int] = set()
        self._head = self._tail = b""
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

    @property
    def done(self) -> bool:
        return self.phase in (Phase.FINISHED, Phase.FAILED)

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
        self.phase, self.error = Phase.FAILED, error
        envelope = error_envelope(error["type"], error["message"])
        if not self.v1:
            return encode(dumps(envelope), "error")
        line = {**envelope, "exception": f"{error['type']}: {error['message']}"}
        self._release()  # nothing sent is lost: the held text goes out before the error
        return self._v1_line() + encode(dumps(line)) + V1_DONE

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
            out.append(self._v1_line())
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
            return b"" if self.v1 else V2_PING
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
        # Every intermediate event is the same but for its text: encode the rest once.
        middle = dumps(completion(self._id, "", None, self.model, None, v1=self.v1))
        self._head, _, self._tail = middle.partition(b'"completion":""')
        self._head += b'"completion":'
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
        if not self.v1:
            return encode(self._head + dumps(text) + self._tail, "completion")
        # JSON escapes character by character, so the encoded whole is the encoded parts
        # joined: each line copies the text so far once instead of re-encoding it.
        self._release()
        self._v1_held = dumps(text)[1:-1]
        return b""

    def _release(self) -> None:
        """v1: the held piece joins the text the next line carries."""
        if self._v1_held:
            self._v1_json += self._v1_held
            self._v1_held = b""
            self._v1_pending = True

    def _v1_line(self) -> bytes:
        """v1: the line with the completion so far, if it has grown since the last one."""
        if not self._v1_pending:
            return b""
        self._v1_pending = False
        return b"".join((b"data: ", self._head, b'"', self._v1_json, b'"', self._tail, b"\n\n"))

    def _finish(self, stop_reason: str, stop: str | None) -> bytes:
        out = self._emit(self._stops.flush()) if self._stops is not None else b""
        # v1: no line for the text so far; the last one carries it with the held piece.
        self.phase, self.stop_reason, self.stop = Phase.FINISHED, stop_reason, stop
        text = self.text if self.v1 else ""
        last = encode(
            dumps(completion(self._id, text, stop_reason, self.model, stop, v1=self.v1)),
            None if self.v1 else "completion",
        )
        return out + last + (V1_DONE if self.v1 else b"")


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
