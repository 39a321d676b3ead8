"""Stop sequences the Messages API rejects (whitespace-only) are matched here instead.

The match that ends first wins, as it would have while the legacy model was generating;
a stream holds back only text that could still become the start of a stop sequence.

All stops are matched in one pass (an Aho-Corasick automaton), so the cost of a piece of
text does not grow with the number of stops. Only runs of characters that occur in some
stop (whitespace, in practice) are stepped through one by one; the rest of the text is
skipped by a regular expression.
"""

import re
from collections.abc import Sequence


class _Automaton:
    """Every stop sequence in one automaton: a trie whose nodes also know the longest
    stop that ends there (`match`) and where to go on a character that does not
    continue them (`fail`)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.goto: list[dict[str, int]] = [{}]
        self.depth = [0]
        self.match: list[str | None] = [None]
        for stop in stops:
            node = 0
            for char in stop:
                if char not in self.goto[node]:
                    self.goto.append({})
                    self.depth.append(self.depth[node] + 1)
                    self.match.append(None)
                    self.goto[node][char] = len(self.goto) - 1
                node = self.goto[node][char]
            self.match[node] = stop
        self.fail = [0] * len(self.goto)
        queue = list(self.goto[0].values())  # depth 1: fall back to the root
        for node in queue:  # breadth first: a node's fail is done before its children's
            for char, child in self.goto[node].items():
                self.fail[child] = self.step(self.fail[node], char)
                if self.match[child] is None:  # the longest stop ending here is a suffix
                    self.match[child] = self.match[self.fail[child]]
                queue.append(child)
        alphabet = "".join(sorted({char for stop in stops for char in stop}))
        self.runs = re.compile(f"[{re.escape(alphabet)}]+" if alphabet else "(?!)")

    def step(self, node: int, char: str) -> int:
        while node and char not in self.goto[node]:
            node = self.fail[node]
        return self.goto[node].get(char, 0)


class StopScanner:
    """The first stop match in a stream of text pieces."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._automaton = _Automaton(stops)
        self._node = 0  # where the text so far leaves the automaton
        self._held = ""  # the end of the text that may begin a stop: depth[_node] chars

    def feed(self, text: str) -> tuple[str, str | None]:
        """Text that is safe to emit now, and the stop sequence matched, if one was."""
        automaton, node, end = self._automaton, self._node, len(self._held)
        text = self._held + text
        for run in automaton.runs.finditer(text, len(self._held)):
            if run.start() != end:  # a character no stop holds: nothing spans it
                node = 0
            for index in range(run.start(), run.end()):
                node = automaton.step(node, text[index])
                stop = automaton.match[node]
                if stop is not None:
                    self._node, self._held = 0, ""
                    return text[: index + 1 - len(stop)], stop
            end = run.end()
        if end != len(text):
            node = 0
        keep = automaton.depth[node]
        self._node, self._held = node, text[len(text) - keep :]
        return text[: len(text) - keep], None

    def flush(self) -> str:
        """The text held back, once no more text will come."""
        held, self._node, self._held = self._held, 0, ""
        return held


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The start and sequence of the stop match that ends first in `text`, if any (of
    those ending there, the longest)."""
    emitted, stop = StopScanner(stops).feed(text)
    return None if stop is None else (len(emitted), stop)
