"""The legacy side of a completion stream: the events it writes, v1 or v2.

    v2 (anthropic-version 2023-06-01): `event: completion` with the new text of each
       delta; pings kept; a last event with empty text and the stop fields.
    v1 (2023-01-01 or no version): data-only lines, each with the whole completion so
       far and `truncated`/`exception`; the last has the stop fields; then `[DONE]`.
       At most one such line per upstream chunk: a client that reads slowly gets fewer,
       longer lines, not a pile of copies of its growing text. The newest piece of text
       is held back until more comes or the stream ends, so the last line always brings
       new text, as the old API's did (clients that diff lines rely on it).

An error ends the stream with an error event (v2) or an error line and `[DONE]` (v1).
"""

from proxy.translate.response import completion, dumps, error_envelope
from proxy.translate.sse import encode
from proxy.wire import ErrorDetail

V2_PING = encode(b'{"type": "ping"}', "ping")
V1_DONE = b"data: [DONE]\n\n"


class CompletionEvents:
    """Writes one legacy stream's events; `start` before any text."""

    def __init__(self, *, v1: bool) -> None:
        self.v1 = v1
        self._head = self._tail = b""
        self._v1_json = bytearray()  # v1: the text lines may carry, JSON-encoded, unquoted
        self._v1_held = b""  # v1: the newest piece, encoded, held back from the lines
        self._v1_pending = False  # v1: _v1_json has grown since the last line

    def start(self, completion_id: str, model: str) -> None:
        # Every intermediate event is the same but for its text: encode the rest once.
        middle = dumps(completion(completion_id, "", None, model, None, v1=self.v1))
        self._head, _, self._tail = middle.partition(b'"completion":""')
        self._head += b'"completion":'

    def ping(self) -> bytes:
        return b"" if self.v1 else V2_PING

    def text(self, text: str) -> bytes:
        """v2: the event for this new text; v1: nothing yet, the text is held back."""
        if not self.v1:
            return encode(self._head + dumps(text) + self._tail, "completion")
        # JSON escapes character by character, so the encoded whole is the encoded parts
        # joined: each line copies the text so far once instead of re-encoding it.
        self._release()
        self._v1_held = dumps(text)[1:-1]
        return b""

    def line(self) -> bytes:
        """v1: the line with the completion so far, if it has grown since the last one."""
        if not self._v1_pending:
            return b""
        self._v1_pending = False
        return b"".join((b"data: ", self._head, b'"', self._v1_json, b'"', self._tail, b"\n\n"))

    def last(
        self, completion_id: str, text: str, stop_reason: str, model: str, stop: str | None
    ) -> bytes:
        """The last event, with the stop fields (v1: the whole `text`, then `[DONE]`)."""
        # v1: no line for the text so far; the last one carries it with the held piece.
        last = encode(
            dumps(completion(completion_id, text, stop_reason, model, stop, v1=self.v1)),
            None if self.v1 else "completion",
        )
        return last + (V1_DONE if self.v1 else b"")

    def error(self, error: ErrorDetail) -> bytes:
        envelope = error_envelope(error["type"], error["message"])
        if not self.v1:
            return encode(dumps(envelope), "error")
        line = {**envelope, "exception": f"{error['type']}: {error['message']}"}
        self._release()  # nothing sent is lost: the held text goes out before the error
        return self.line() + encode(dumps(line)) + V1_DONE

    def _release(self) -> None:
        """v1: the held piece joins the text the next line carries."""
        if self._v1_held:
            self._v1_json += self._v1_held
            self._v1_held = b""
            self._v1_pending = True
