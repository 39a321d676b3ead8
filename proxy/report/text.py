"""The migration report as plain aligned tables for a terminal, at most 100 columns:
the decisions first (text_cockpit.py), then arms, callers, adaptations, cost, and the
details."""

from proxy.report import text_cockpit as cockpit
from proxy.report.columns import clean, more, table
from proxy.report.markup import ms, pct
from proxy.report.rows import RECENT_DAYS, Report

DAY_BAR = 50  # columns of the longest per-day bar


def _days(report: Report) -> list[str]:
    """Requests and errors per day, the last RECENT_DAYS, each with a bar of `#`."""
    days = report.days[-RECENT_DAYS:]
    top = max((d.requests for d in days), default=0) or 1
    rows = [
        [d.day, f"{d.requests:,}", f"{d.errors:,}", "#" * max(1, round(DAY_BAR * d.requests / top))]
        for d in days
    ]
    lines = table([("day", 10), ("requests", -9), ("errors", -9), ("", DAY_BAR)], rows)
    return lines + more(len(report.days) - len(days), "earlier days (in --json)")


def render_text(report: Report) -> str:
    """Plain aligned tables, at most 100 columns wide."""
    t = report.totals
    events = ", ".join(f"{clean(name)} {n:,}" for name, n in report.events.items()) or "none"
    out = [
        "complete-bridge migration report",
        f"Period:    {report.first or '-'} .. {report.last or '-'}",
        f"Legacy:    {t.requests:,} requests from {t.callers:,} callers on {t.models:,} models"
        f"; {t.streams:,} streamed",
        f"Errors:    {t.errors:,} ({pct(t.error_rate)} of answered); {t.hangups:,} client hang-ups",
        f"Tokens:    {t.input_tokens:,} in, {t.output_tokens:,} out",
        f"Lines:     {report.lines:,} read, {report.skipped:,} skipped (not a usable event)"
        + (f", {report.outside:,} outside --since/--until" if report.outside else ""),
        f"Events:    {events}",
    ]
    for section in (cockpit.decisions, cockpit.arms, cockpit.callers):
        out += ["", *section(report)]
    out += ["", "Adaptations (what callers must change when they migrate)"]
    out += table(
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
                pct(a.share),
                ", ".join(f"{name} {n}" for name, n in a.top_models),
                ", ".join(f"{name} {n}" for name, n in a.top_callers),
            ]
            for a in report.adaptations
        ]
        or [["none", "", "", "", ""]],
    )
    out += more(report.adaptations_more, "kinds")
    out += ["", *cockpit.costs(report), *cockpit.choices(report)]
    out += ["", "Details", "======="]
    out += ["", "Legacy requests per day", *_days(report)]
    out += ["", "Callers in detail (key fingerprints)"]
    out += table(
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
                pct(c.share),
                f"{c.errors:,}",
                c.last_seen or "-",
                ", ".join(c.models),
            ]
            for c in report.callers
        ],
    )
    out += more(report.callers_more, "callers")
    out += ["", "Legacy models"]
    out += table(
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
                pct(m.share),
                f"{m.errors:,}",
                f"{m.callers:,}",
                ", ".join(m.upstream_models),
            ]
            for m in report.models
        ],
    )
    out += more(report.models_more, "models")
    if report.shadow:
        out += [
            "",
            "Shadow comparisons (rates over answered comparisons; length: secondary/primary)",
        ]
        out += table(
            [
                ("route", 16),
                ("compared", -9),
                ("skipped", -8),
                ("failed", -7),
                ("exact", -7),
                ("normalised", -10),
                ("stop reason", -11),
                ("similar", -7),
                ("length", -6),
            ],
            [
                [
                    s.route,
                    f"{s.comparisons:,}",
                    f"{s.skipped:,}",
                    f"{s.failed:,}",
                    pct(s.exact_rate),
                    pct(s.normalised_rate),
                    pct(s.stop_rate),
                    pct(s.similarity),
                    ms(None if s.length_ratio is None else 100 * s.length_ratio) + "%",
                ]
                for s in report.shadow
            ],
        )
    out += ["", *cockpit.timeline(report)]
    return "\n".join(out) + "\n"
