"""Where each key of a TOML document is: tomllib gives values, not positions, so a config
error could not name its line. `key_lines(text)` reads a document tomllib has accepted
and maps every key path to the line it is written on, and `line_of` finds the line an
error's path points at.

A path is what the parsed value is indexed by: `("routes", 1, "match", "model")` is the
`model` of the `match` of the second `[[routes]]` table, whether written as a dotted key,
an inline table, a `[routes.match]` table or an element of `routes = [...]`. A table's
path is at its `[header]` (or where a dotted key or inline table first makes it).
"""

import tomllib

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VALUE_END = frozenset(",]}\n#")


class _Reader:
    """A cursor over the text that records `path -> line`; it trusts the syntax (tomllib
    checked it) and only follows structure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.implicit: set[KeyPath] = set()  # tables only a longer header has named so far
        self.arrays: dict[KeyPath, int] = {}  # [[array]] tables: the index of the latest

    def peek(self, count: int = 1) -> str:
        return self.text[self.at : self.at + count]

    def advance(self, count: int = 1) -> str:
        if self.at >= len(self.text):
            raise IndexError("the text ended inside a value")
        taken = self.text[self.at : self.at + count]
        self.line += taken.count("\n")
        self.at += count
        return taken

    def blank(self, newlines: bool) -> None:
        """Skip spaces and comments (and newlines, if `newlines`)."""
        while self.at < len(self.text):
            char = self.peek()
            if char in " \t\r" or (newlines and char == "\n"):
                self.advance()
            elif char == "#":
                while self.at < len(self.text) and self.peek() != "\n":
                    self.advance()
            else:
                return

    def moved(self, start: int) -> None:
        if self.at == start:
            raise ValueError("not TOML this reader can follow")

    def mark(self, path: KeyPath, line: int, explicit: bool = True) -> None:
        if path not in self.lines or (explicit and path in self.implicit):
            self.lines[path] = line
            self.implicit.discard(path)
            if not explicit:
                self.implicit.add(path)

    # --- keys ------------------------------------------------------------------------

    def key(self) -> tuple[str, ...]:
        """A dotted key: bare, "basic" or 'literal' parts."""
        parts = []
        while True:
            self.blank(newlines=False)
            if self.peek() in "\"'":
                start = self.at
                self.string()
                parts.append(tomllib.loads(f"k = {self.text[start : self.at]}")["k"])
            else:
                start = self.at
                while self.at < len(self.text) and self.peek() in _BARE:
                    self.advance()
                parts.append(self.text[start : self.at])
            self.blank(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.advance()

    def string(self) -> None:
        quote = self.peek()
        if self.peek(3) == quote * 3:
            self.advance(3)
            while self.peek(3) != quote * 3:
                self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
            self.advance(3)
            while self.peek() == quote:  # up to two quotes may close the content
                self.advance()
            return
        self.advance()
        while self.peek() != quote:
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()

    # --- values ----------------------------------------------------------------------

    def value(self, path: KeyPath) -> None:
        char = self.peek()
        if char in "\"'":
            self.string()
        elif char == "[":
            self.advance()
            index = 0
            while True:
                self.blank(newlines=True)
                if self.peek() == "]":
                    break
                start = self.at
                self.mark((*path, index), self.line)
                self.value((*path, index))
                index += 1
                self.blank(newlines=True)
                self.moved(start)
                if self.peek() == ",":
                    self.advance()
            self.advance()
        elif char == "{":
            self.advance()
            while True:
                self.blank(newlines=True)
                if self.peek() == "}":
                    break
                start = self.at
                self.pair(path)
                self.blank(newlines=True)
                self.moved(start)
                if self.peek() == ",":
                    self.advance()
            self.advance()
        else:  # a number, boolean or date: up to the next delimiter
            while self.at < len(self.text) and self.peek() not in _VALUE_END:
                self.advance()

    def pair(self, table: KeyPath) -> None:
        """`key = value` in `table`: each table a dotted key makes is marked too."""
        line = self.line
        keys = self.key()
        for end in range(1, len(keys)):
            self.mark((*table, *keys[:end]), line, explicit=False)
        self.mark((*table, *keys), line)
        self.blank(newlines=False)
        self.advance()  # =
        self.blank(newlines=False)
        self.value((*table, *keys))

    # --- the document ----------------------------------------------------------------

    def header(self) -> KeyPath:
        """`[a.b]` or `[[a.b]]`: the table's path, through the latest element of each
        array of tables on the way."""
        line = self.line
        array = self.peek(2) == "[["
        self.advance(2 if array else 1)
        keys = self.key()
        self.advance(2 if array else 1)
        path: KeyPath = ()
        for key in keys[:-1]:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path])
            self.mark(path, line, explicit=False)
        path = (*path, keys[-1])
        if array:
            self.mark(path, line, explicit=False)
            self.arrays[path] = self.arrays.get(path, -1) + 1
            path = (*path, self.arrays[path])
        self.mark(path, line)
        return path

    def document(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while True:
            self.blank(newlines=True)
            if self.at >= len(self.text):
                return self.lines
            start = self.at
            if self.peek() == "[":
                table = self.header()
            else:
                self.pair(table)
            self.moved(start)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Every key path of a TOML document tomllib accepts, to its 1-based line. For text
    it does not accept, the paths found before the first thing it could not follow."""
    reader = _Reader(text)
    try:
        return reader.document()
    except (IndexError, ValueError, tomllib.TOMLDecodeError):  # not TOML after all
        return reader.lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, or of the nearest table above it that is in the document (a
    missing key's table); None when nothing on the way is."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
