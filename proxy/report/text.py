"""The migration report as plain aligned tables for a terminal, at most 100 columns."""

from proxy.report.rows import RECENT_DAYS, Report

DAY_BAR = 50  # columns of the longest per-day bar


def clean(text: str) -> str:
    """Log values are untrusted: no control characters (terminal escapes) reach the screen."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def _cell(text: str, width: int) -> str:
    text = clean(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(columns: list[tuple[str, int]], rows: list[list[str]]) -> list[str]:
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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _more(count: int, what: str) -> list[str]:
    return [f"  ... and {count:,} more {what}"] if count else []


def _days(report: Report) -> list[str]:
    """Requests and errors per day, the last RECENT_DAYS, each with a bar of `#`."""
    days = report.days[-RECENT_DAYS:]
    top = max((d.requests for d in days), default=0) or 1
    rows = [
        [d.day, f"{d.requests:,}", f"{d.errors:,}", "#" * max(1, round(DAY_BAR * d.requests / top))]
        for d in days
    ]
    table = _table([("day", 10), ("requests", -9), ("errors", -9), ("", DAY_BAR)], rows)
    return table + _more(len(report.days) - len(days), "earlier days (in --json)")


def render_text(report: Report) -> str:
    """Plain aligned tables, at most 100 columns wide."""
    t = report.totals
    events = ", ".join(f"{clean(name)} {n:,}" for name, n in report.events.items()) or "none"
    out = [
        "complete-bridge migration report",
        f"Period:    {report.first or '-'} .. {report.last or '-'}",
        f"Legacy:    {t.requests:,} requests from {t.callers:,} callers on {t.models:,} models"
        f"; {t.streams:,} streamed",
        f"Errors:    {t.errors:,} ({_pct(t.error_rate)} of answered); "
        f"{t.hangups:,} client hang-ups",
        f"Tokens:    {t.input_tokens:,} in, {t.output_tokens:,} out",
        f"Lines:     {report.lines:,} read, {report.skipped:,} skipped (not a usable event)"
        + (f", {report.outside:,} outside --since/--until" if report.outside else ""),
        f"Events:    {events}",
    ]
    out += ["", "Legacy requests per day", *_days(report)]
    out += ["", "Callers (key fingerprints)"]
    out += _table(
        [
            ("caller", 16),
            ("requests", -9),
            ("share", -6),
            ("errors", -7),
            ("last seen", 20),
            ("models", 30),
        ],
        [
            [
                c.caller,
                f"{c.requests:,}",
                _pct(c.share),
                f"{c.errors:,}",
                c.last_seen or "-",
                ", ".join(c.models),
            ]
            for c in report.callers
        ],
    )
    out += _more(report.callers_more, "callers")
    out += ["", "Legacy models"]
    out += _table(
        [
            ("legacy model", 28),
            ("requests", -9),
            ("share", -6),
            ("errors", -7),
            ("callers", -7),
            ("upstream models", 31),
        ],
        [
            [
                m.legacy_model,
                f"{m.requests:,}",
                _pct(m.share),
                f"{m.errors:,}",
                f"{m.callers:,}",
                ", ".join(m.upstream_models),
            ]
            for m in report.models
        ],
    )
    out += _more(report.models_more, "models")
    out += ["", "Routes and arms (errors exclude client hang-ups; durations in ms)"]
    out += _table(
        [
            ("route", 12),
            ("arm", 9),
            ("mode", 11),
            ("requests", -9),
            ("errors", -13),
            ("hung up", -7),
            ("p50/p95", -11),
            ("ttfb p50/p95", -12),
        ],
        [
            [
                r.route,
                r.arm,
                r.mode,
                f"{r.requests:,}",
                f"{r.errors:,} ({_pct(r.error_rate)})",
                f"{r.hangups:,}",
                f"{_ms(r.duration_p50_ms)}/{_ms(r.duration_p95_ms)}",
                f"{_ms(r.ttfb_p50_ms)}/{_ms(r.ttfb_p95_ms)}",
            ]
            for r in report.routes
        ],
    )
    out += ["", "Adaptations (what callers must change when they migrate)"]
    out += _table(
        [
            ("adaptation", 26),
            ("requests", -9),
            ("share", -6),
            ("top models", 25),
            ("top callers", 25),
        ],
        [
            [
                a.kind,
                f"{a.requests:,}",
                _pct(a.share),
                ", ".join(f"{name} {n}" for name, n in a.top_models),
                ", ".join(f"{name} {n}" for name, n in a.top_callers),
            ]
            for a in report.adaptations
        ]
        or [["none", "", "", "", ""]],
    )
    out += _more(report.adaptations_more, "kinds")
    if report.shadow:
        out += ["", "Shadow comparisons (rates over comparisons that did not fail)"]
        out += _table(
            [
                ("route", 20),
                ("compared", -9),
                ("skipped", -8),
                ("failed", -7),
                ("exact", -7),
                ("normalised", -10),
                ("stop reason", -11),
            ],
            [
                [
                    s.route,
                    f"{s.comparisons:,}",
                    f"{s.skipped:,}",
                    f"{s.failed:,}",
                    _pct(s.exact_rate),
                    _pct(s.normalised_rate),
                    _pct(s.stop_rate),
                ]
                for s in report.shadow
            ],
        )
    return "\n".join(out) + "\n"
