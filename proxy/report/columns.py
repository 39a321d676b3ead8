"""Plain aligned text tables for the terminal report; log values are untrusted: no
control characters (terminal escapes) reach the screen."""


def clean(text: str) -> str:
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def _cell(text: str, width: int) -> str:
    text = clean(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(columns: list[tuple[str, int]], rows: list[list[str]]) -> list[str]:
    """Columns are (title, max width); a negative width right-aligns the column."""
    cells = [[_cell(v, abs(w)) for v, (_, w) in zip(row, columns, strict=True)] for row in rows]
    widths = [
        max([len(title)] + [len(row[i]) for row in cells]) for i, (title, _) in enumerate(columns)
    ]
    out = []
    for row in [[title for title, _ in columns], *cells]:
        parts = [
            v.rjust(widths[i]) if columns[i][1] < 0 else v.ljust(widths[i])
            for i, v in enumerate(row)
        ]
        out.append("  ".join(parts).rstrip())
    return out


def more(count: int, what: str) -> list[str]:
    return [f"  ... and {count:,} more {what}"] if count else []
