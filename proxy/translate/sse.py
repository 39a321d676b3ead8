"""Server-sent events: an incremental decoder over bytes, and the encoder.

Lines end in `\\r\\n`, `\\n` or `\\r`, and a chunk may end anywhere, even between `\\r` and
`\\n` or inside a UTF-8 character; the decoder gives the same events for any split.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._partial = b""
        self._skip_lf = False  # the last chunk ended in "\r": a "\n" next is the same break
        self._event = ""
        self._data: list[str] = []

    def decode(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        lines = (self._partial + chunk).splitlines(keepends=True)
        self._partial = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        if lines and lines[-1].endswith(b"\r"):
            self._skip_lf = True
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """Events left when the stream ends without a final blank line."""
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        event = self._line("")
        return [] if event is None else [event]

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            event, data = self._event, self._data
            self._event, self._data = "", []
            return ServerSentEvent(event or "message", "\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def encode(data: bytes, event: str | None = None) -> bytes:
    """One event; `data` must be a single line (compact JSON is)."""
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data + b"\n\n"
