"""The report's SVG bar charts, drawn here: the top callers, models and adaptations as
horizontal bars, and requests per day (errors in red) as vertical bars."""

from collections.abc import Sequence

from proxy.report.markup import esc, more
from proxy.report.rows import RECENT_DAYS, Report

CHART_DAYS = RECENT_DAYS  # the requests-per-day chart shows the last quarter
CHART_BARS = 15  # the horizontal bar charts show the top 15


def hbars(chart_id: str, title: str, items: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart, one `rect.bar` per item, longest first."""
    items = list(items)[:CHART_BARS]
    if not items:
        return ""
    label_w, bar_w, row_h = 260, 420, 20
    top = max(n for _, n in items) or 1
    height = row_h * len(items) + 10
    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{esc(title)}" '
        f'width="{label_w + bar_w + 80}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, n) in enumerate(items):
        y = 5 + i * row_h
        width = max(1.0, bar_w * n / top)
        shown = label if len(label) <= 40 else label[:39] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{esc(shown)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 4}">'
            f"<title>{esc(label)}: {n:,}</title></rect>"
            f'<text x="{label_w + width + 4:.1f}" y="{y + 14}">{n:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def day_bars(report: Report) -> str:
    """Requests per day as vertical bars, errors overlaid in red, the last CHART_DAYS days."""
    days = report.days[-CHART_DAYS:]
    if not days:
        return ""
    bar_w, height, pad = max(4, min(40, 720 // len(days))), 160, 30
    top = max(d.requests for d in days) or 1
    width = max(300, pad + bar_w * len(days) + 10)  # room for both date labels
    parts = [
        f'<svg id="chart-days" class="chart" role="img" aria-label="legacy requests per day" '
        f'width="{width}" height="{height + 40}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="12">{top:,}</text><text x="0" y="{height + 10}">0</text>',
    ]
    for i, day in enumerate(days):
        x = pad + i * bar_w
        h = height * day.requests / top
        e = height * day.errors / top
        parts.append(
            f'<rect class="bar" x="{x}" y="{height + 10 - h:.1f}" width="{bar_w - 1}" '
            f'height="{h:.1f}"><title>{day.day}: {day.requests:,} requests, '
            f"{day.errors:,} errors</title></rect>"
        )
        if day.errors:
            parts.append(
                f'<rect class="err" x="{x}" y="{height + 10 - e:.1f}" width="{bar_w - 1}" '
                f'height="{e:.1f}"></rect>'
            )
    parts.append(f'<text x="{pad}" y="{height + 30}">{days[0].day}</text>')
    if len(days) > 1:
        parts.append(
            f'<text x="{width - 10}" y="{height + 30}" text-anchor="end">{days[-1].day}</text>'
        )
    parts.append("</svg>")
    note = len(report.days) - len(days)
    return "".join(parts) + more(note, "earlier days (in --json)")
