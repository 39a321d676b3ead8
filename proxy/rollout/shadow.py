"""What a shadowed call's primary answered, for the comparison with its secondary arm
(proxy/edge/shadows.py): the text and stop reason of a whole legacy answer, read as it
passes to the client (`Capture`) or from a whole body (`legacy_answer`)."""

import zlib
from typing import Any

import orjson

from proxy.translate.sse import ServerSentEvent, SSEDecoder

Reply = tuple[str, str | None]  # a whole legacy answer: its text and stop reason


class Capture:
    """What the primary answered, for the comparison: its text and stop reason, set
    directly (translate) or read from the legacy bytes it relayed (pass-through), as
    they pass: gzip or deflate undone, a stream decoded event by event (v1 repeats the
    whole text in every line: nothing is kept but the latest). At most `limit` bytes
    are held; past that, or on anything unreadable, there is no answer to compare."""

    def __init__(self, limit: int, stream: bool) -> None:
        self.limit = limit
        self.stream = stream
        self.broken = False
        self._text: str | None = None
        self._stop: str | None = None
        self._inflate: Any = None
        self._decoder = SSEDecoder(max_event_bytes=limit) if stream else None
        self._parts: list[bytes] = []
        self._size = 0

    def encoding(self, encoding: str | None) -> None:
        """The relayed body's content-encoding."""
        if encoding in ("gzip", "deflate", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding not in (None, "", "identity"):
            self.broken = True  # br, zstd: not read here

    def add(self, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            if self._inflate is not None:
                chunk = self._inflate.decompress(chunk, self.limit)
                if self._inflate.unconsumed_tail:  # more than the limit out of one chunk
                    raise ValueError("too large")
            if self._decoder is None:
                self._size += len(chunk)
                if self._size > self.limit:
                    raise ValueError("too large")
                self._parts.append(chunk)
            else:
                self._events(self._decoder.decode(chunk))
                if self._decoder.too_large:
                    raise ValueError("too large")
        except (ValueError, zlib.error):
            self.broken = True
            self._parts = []

    def _events(self, events: list[ServerSentEvent]) -> None:
        for event in events:
            if event.data == "[DONE]" or event.event == "ping":
                continue
            data = orjson.loads(event.data)
            if not isinstance(data, dict) or data.get("type") != "completion":
                raise ValueError("not a completion")  # an error event: no whole answer
            text = str(data["completion"]) if "completion" in data else ""
            # v2 events carry the new text; v1 lines the whole text so far.
            if event.event == "completion":
                self._text = (self._text or "") + text
            else:
                self._text = text
            self._stop = data.get("stop_reason")

    def set(self, text: str, stop_reason: str | None) -> None:
        self._text, self._stop = text, stop_reason

    def answer(self) -> Reply | None:
        """(text, stop reason), or None when the primary gave no whole answer."""
        if self.broken:
            return None
        if self._decoder is not None:
            try:
                self._events(self._decoder.flush())
            except ValueError:
                return None
            self._decoder = None
        if self._parts:
            try:
                data = orjson.loads(b"".join(self._parts))
                self._text, self._stop = str(data["completion"]), data.get("stop_reason")
            except (ValueError, KeyError, TypeError):
                return None
            self._parts = []
        if self._text is None or (self.stream and self._stop is None):
            return None
        return self._text, self._stop


def legacy_answer(body: bytes, stream: bool) -> Reply | None:
    """The text and stop reason of a whole legacy answer: a JSON body, or a v1 or v2
    stream."""
    capture = Capture(len(body) + 1, stream)
    capture.add(body)
    return capture.answer()
