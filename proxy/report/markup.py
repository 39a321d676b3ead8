"""HTML building blocks of the report page: escaping (every value from the log is
untrusted), tables and the "... and N more" note; and the number formats the text and
HTML reports share."""

from collections.abc import Sequence
from html import escape


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def pct(value: float | None) -> str:
    """Every rate of the report, text, HTML: one decimal (99.1%)."""
    return "-" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    """Durations (and tokens per call): whole numbers."""
    return "-" if value is None else f"{value:.0f}"


def num(value: int) -> str:
    return f"{value:,}"


def table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table; cells that are numbers (or percentages) are right-aligned."""

    def cell(tag: str, value: object) -> str:
        numeric = (
            isinstance(value, int | float)
            or str(value).rstrip("%").replace(",", "").replace(".", "").replace("/", "").isdigit()
        )
        return f"<{tag}{' class=n' if numeric else ''}>{esc(value)}</{tag}>"

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def more(count: int, what: str) -> str:
    return f'<p class="more">... and {count:,} more {esc(what)}</p>' if count else ""
