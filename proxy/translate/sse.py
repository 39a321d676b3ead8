"""Server-sent events: an incremental decoder over bytes, and the encoder.

Lines end in `\\r\\n`, `\\n` or `\\r`, and a chunk may end anywhere, even between `\\r` and
`\\n` or inside a UTF-8 character; the decoder gives the same events for any split. A
long line costs time linear in its length, however many chunks it comes in; an event
past a size limit stops the decoding instead of growing without bound.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    """Bytes in, events out. An event (its data and unfinished line) over
    `max_event_bytes` ends the decoding: `too_large` is set and the rest is ignored."""

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self.max_event_bytes = max_event_bytes
        self.too_large = False
        self._partial: list[bytes] = []  # the unfinished line, in the pieces it came in
        self._partial_size = 0
        self._skip_lf = False  # the last chunk ended in "\r": a "\n" next is the same break
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0  # bytes of the current event's data lines

    def decode(self, chunk: bytes) -> list[ServerSentEvent]:
        if self.too_large:
            return []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:  # the line goes on: keep the piece, copy nothing
                self._partial.append(chunk)
                self._partial_size += len(chunk)
                self._check(self._partial_size)
            return []
        lines = b"".join([*self._partial, chunk]).splitlines(keepends=True)
        self._partial = [] if lines[-1].endswith((b"\n", b"\r")) else [lines.pop()]
        self._partial_size = len(self._partial[0]) if self._partial else 0
        if lines and lines[-1].endswith(b"\r"):
            self._skip_lf = True
        events: list[ServerSentEvent] = []
        limit = self.max_event_bytes
        for line in lines:
            event = self._line(line.rstrip(b"\r\n").decode("utf-8", "replace"), len(line))
            if event is not None:
                events.append(event)
            elif limit is not None and self._data_size > limit and self._check(0):
                break  # a data line too many: stop before reading more
        else:
            self._check(self._partial_size)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """Events left when the stream ends without a final blank line."""
        if self.too_large:
            return []
        if self._partial:
            line = b"".join(self._partial)
            self._partial, self._partial_size = [], 0
            self._line(line.decode("utf-8", "replace"), len(line))
        event = self._line("", 0)
        return [] if event is None else [event]

    def _line(self, line: str, size: int) -> ServerSentEvent | None:
        if not line:
            event, data = self._event, self._data
            self._event, self._data, self._data_size = "", [], 0
            return ServerSentEvent(event or "message", "\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._data_size += size
        return None

    def _check(self, partial: int) -> bool:
        """Whether the current event, with `partial` bytes of its next line, is too large."""
        limit = self.max_event_bytes
        if limit is not None and self._data_size + partial > limit:
            self.too_large = True
            self._partial, self._data = [], []  # nothing more is read: let it go
        return self.too_large


def encode(data: bytes, event: str | None = None) -> bytes:
    """One event; `data` must be a single line (compact JSON is)."""
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data + b"\n\n"
