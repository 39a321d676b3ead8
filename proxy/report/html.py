"""The migration report as one self-contained HTML page: inline CSS, SVG bar charts drawn
here, no script, no external URL (a Content-Security-Policy forbids both). Every value
from the log is untrusted and goes through `html.escape`."""

from collections.abc import Sequence
from html import escape

from proxy.report.rows import RECENT_DAYS, Report

CHART_DAYS = RECENT_DAYS  # the requests-per-day chart shows the last quarter
CHART_BARS = 15  # the horizontal bar charts show the top 15

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; text-align: left;
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
rect.bar { fill: #4a78b5; } rect.err { fill: #c8423b; }
.more { color: #666; font-style: italic; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table; cells that are numbers (or percentages) are right-aligned."""

    def cell(tag: str, value: object) -> str:
        numeric = (
            isinstance(value, int | float)
            or str(value).rstrip("%").replace(",", "").replace(".", "").replace("/", "").isdigit()
        )
        return f"<{tag}{' class=n' if numeric else ''}>{_e(value)}</{tag}>"

    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _more(count: int, what: str) -> str:
    return f'<p class="more">... and {count:,} more {_e(what)}</p>' if count else ""


def hbars(chart_id: str, title: str, items: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart, one `rect.bar` per item, longest first."""
    items = list(items)[:CHART_BARS]
    if not items:
        return ""
    label_w, bar_w, row_h = 260, 420, 20
    top = max(n for _, n in items) or 1
    height = row_h * len(items) + 10
    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{_e(title)}" '
        f'width="{label_w + bar_w + 80}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, n) in enumerate(items):
        y = 5 + i * row_h
        width = max(1.0, bar_w * n / top)
        shown = label if len(label) <= 40 else label[:39] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(shown)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 4}">'
            f"<title>{_e(label)}: {n:,}</title></rect>"
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
    return "".join(parts) + _more(note, "earlier days (in --json)")


def render_html(report: Report) -> str:
    t = report.totals
    summary = [
        ("Period", f"{report.first or '-'} .. {report.last or '-'}"),
        ("Legacy requests", f"{t.requests:,} ({t.streams:,} streamed)"),
        ("Callers", f"{t.callers:,}"),
        ("Legacy models", f"{t.models:,}"),
        ("Errors", f"{t.errors:,} ({_pct(t.error_rate)} of answered)"),
        ("Client hang-ups", f"{t.hangups:,}"),
        ("Tokens", f"{t.input_tokens:,} in, {t.output_tokens:,} out"),
        ("Lines", f"{report.lines:,} read, {report.skipped:,} skipped, {report.outside:,} outside"),
        ("Events", ", ".join(f"{k} {v:,}" for k, v in report.events.items()) or "none"),
    ]
    sections = [
        '<dl id="summary">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in summary),
        "</dl>",
        "<h2>Legacy requests per day</h2>",
        day_bars(report),
        "<h2>Callers (key fingerprints)</h2>",
        hbars(
            "chart-callers", "requests by caller", [(c.caller, c.requests) for c in report.callers]
        ),
        _table(
            "callers",
            ["caller", "requests", "share", "errors", "last seen", "models"],
            [
                [
                    c.caller,
                    c.requests,
                    _pct(c.share),
                    c.errors,
                    c.last_seen or "-",
                    ", ".join(c.models),
                ]
                for c in report.callers
            ],
        ),
        _more(report.callers_more, "callers"),
        "<h2>Legacy models</h2>",
        hbars(
            "chart-models",
            "requests by legacy model",
            [(m.legacy_model, m.requests) for m in report.models],
        ),
        _table(
            "models",
            ["legacy model", "requests", "share", "errors", "callers", "upstream models"],
            [
                [
                    m.legacy_model,
                    m.requests,
                    _pct(m.share),
                    m.errors,
                    m.callers,
                    ", ".join(m.upstream_models),
                ]
                for m in report.models
            ],
        ),
        _more(report.models_more, "models"),
        "<h2>Routes and arms</h2><p>Errors: status 400 or more, or an error type, among "
        "answered requests; client hang-ups are counted apart. Durations in ms.</p>",
        _table(
            "routes",
            [
                "route",
                "arm",
                "mode",
                "requests",
                "errors",
                "error rate",
                "hang-ups",
                "p50",
                "p95",
                "TTFB p50",
                "TTFB p95",
            ],
            [
                [
                    r.route,
                    r.arm,
                    r.mode,
                    r.requests,
                    r.errors,
                    _pct(r.error_rate),
                    r.hangups,
                    _ms(r.duration_p50_ms),
                    _ms(r.duration_p95_ms),
                    _ms(r.ttfb_p50_ms),
                    _ms(r.ttfb_p95_ms),
                ]
                for r in report.routes
            ],
        ),
        "<h2>Adaptations</h2><p>What the bridge changed in a request: the prompts that "
        "will need attention when their callers migrate.</p>",
        hbars(
            "chart-adaptations",
            "requests by adaptation",
            [(a.kind, a.requests) for a in report.adaptations],
        ),
        _table(
            "adaptations",
            ["adaptation", "requests", "share", "top models", "top callers"],
            [
                [a.kind, a.requests, _pct(a.share)]
                + [
                    ", ".join(f"{k} ({n:,})" for k, n in top)
                    for top in (a.top_models, a.top_callers)
                ]
                for a in report.adaptations
            ],
        ),
        _more(report.adaptations_more, "kinds"),
    ]
    if report.shadow:
        sections += [
            "<h2>Shadow comparisons</h2><p>Agreement rates are over comparisons that did "
            "not fail.</p>",
            _table(
                "shadow",
                ["route", "comparisons", "skipped", "failed", "exact", "normalised", "stop reason"],
                [
                    [
                        s.route,
                        s.comparisons,
                        s.skipped,
                        s.failed,
                        _pct(s.exact_rate),
                        _pct(s.normalised_rate),
                        _pct(s.stop_rate),
                    ]
                    for s in report.shadow
                ],
            ),
        ]
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>complete-bridge migration report</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>complete-bridge migration report</h1>" + "\n".join(sections) + "</body></html>\n"
    )
