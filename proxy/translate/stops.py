"""Stop sequences the Messages API rejects (whitespace-only) are matched here instead.

The match that ends first wins, as it would have while the legacy model was generating;
a stream holds back only text that could still become the start of a stop sequence.
"""

from collections.abc import Sequence


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The start and sequence of the stop match that ends first in `text`, if any."""
    best: tuple[int, int, str] | None = None
    for stop in stops:
        start = text.find(stop)
        if start >= 0:
            candidate = (start + len(stop), start, stop)
            if best is None or candidate < best:
                best = candidate
    return None if best is None else (best[1], best[2])


class StopScanner:
    """Incremental `find_stop` over a stream of text pieces."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """Text that is safe to emit now, and the stop sequence matched, if one was."""
        text = self._held + text
        match = find_stop(text, self._stops)
        if match is not None:
            self._held = ""
            return text[: match[0]], match[1]
        keep = self._partial_match_length(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep], None

    def flush(self) -> str:
        """The text held back, once no more text will come."""
        held, self._held = self._held, ""
        return held

    def _partial_match_length(self, text: str) -> int:
        """Length of the longest end of `text` that begins some stop sequence."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
