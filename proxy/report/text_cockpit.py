"""The cockpit's sections of the terminal report: decisions (each route's stage, verdict,
reasons and the config change for its next step), arms side by side, callers with what
served them, cost, models compared and the stage timeline."""

import textwrap

from proxy.report.columns import clean, table
from proxy.report.markup import ms, num, pct
from proxy.report.rows import Report
from proxy.report.usage import dollars

WIDTH = 100


def decisions(report: Report) -> list[str]:
    out = ["Decisions (each route's stage, verdict and next step; details below)"]
    if report.force_mode:
        out.append(f"  force_mode = {clean(report.force_mode)} is on: routes are not in force")
    out += table(
        [("route", 20), ("stage", 14), ("verdict", 19), ("next step", 40)],
        [[d.route, d.stage, d.verdict, d.next_step] for d in report.decisions]
        or [["none", "", "", ""]],
    )
    for d in report.decisions:
        out += ["", clean(f"{d.route}: {d.stage} -> {d.verdict}: {d.next_step}")[:WIDTH]]
        for reason in d.reasons:
            out += textwrap.wrap(
                clean(reason), WIDTH, initial_indent="  - ", subsequent_indent="    "
            )
        if d.toml:
            out += ["  config change:"] + [f"    {clean(x)}"[:WIDTH] for x in d.toml.splitlines()]
    return out


def arms(report: Report) -> list[str]:
    out = ["Arms side by side (durations in ms; 95% intervals in --json)"]
    out += table(
        [
            ("route", 14),
            ("arm", 9),
            ("mode", 11),
            ("requests", -8),
            ("errors", -14),
            ("p50/p95", -11),
            ("ttfb p50/p95", -12),
        ],
        [
            [
                a.route,
                a.arm,
                a.mode,
                num(a.requests),
                f"{num(a.errors)} ({pct(a.error_rate)})",
                f"{ms(a.p50_ms)}/{ms(a.p95_ms)}",
                f"{ms(a.ttfb_p50_ms)}/{ms(a.ttfb_p95_ms)}",
            ]
            for a in report.arms
        ],
    )
    out += ["", "Arms: models, tokens per call (in/out), adaptations, cost"]
    out += table(
        [
            ("route", 14),
            ("arm", 9),
            ("models", 26),
            ("tokens", -11),
            ("adapted", -8),
            ("per 1,000", -10),
            ("cost", 14),
        ],
        [
            [
                a.route,
                a.arm,
                ", ".join(a.models) or "-",
                f"{ms(a.input_per_call)}/{ms(a.output_per_call)}",
                num(a.adapted),
                dollars(a.cost_per_1000),
                a.cost,
            ]
            for a in report.arms
        ],
    )
    return out


def callers(report: Report) -> list[str]:
    out = ["Callers: the route / arm / mode that served them, and what they must change"]
    out += table(
        [("caller", 12), ("requests", -8), ("served by (route / arm / mode)", 44), ("flags", 28)],
        [
            [c.caller, num(c.requests), "; ".join(c.served), "; ".join(c.flags) or "-"]
            for c in report.callers
        ],
    )
    return out


def costs(report: Report) -> list[str]:
    out = [
        f"Cost (prices per million tokens as of {report.prices_taken}; unknown: no tokens "
        "logged or no price)"
    ]
    out += table(
        [
            ("scope", 7),
            ("name", 32),
            ("calls", -9),
            ("unknown", -8),
            ("cost", -12),
            ("per 1,000", -10),
        ],
        [
            [
                c.scope,
                c.name,
                num(c.calls),
                num(c.unknown_calls),
                dollars(c.cost),
                dollars(c.cost_per_1000),
            ]
            for c in report.costs
        ],
    )
    return out


def choices(report: Report) -> list[str]:
    if not report.choices:
        return []
    out = ["", "Models compared in shadow (secondary tokens estimated from its answer length)"]
    for c in report.choices:
        out += table(
            [
                ("route", 14),
                ("model", 22),
                ("agrees", -7),
                ("similar", -7),
                ("p95", -7),
                ("out/call", -8),
                ("per 1,000", -10),
            ],
            [
                [
                    c.route,
                    c.primary_model,
                    "",
                    "",
                    ms(c.primary_p95_ms),
                    ms(c.primary_output_per_call),
                    dollars(c.primary_per_1000),
                ],
                [
                    "",
                    c.secondary_model,
                    pct(c.stop_agreement),
                    pct(c.similarity),
                    ms(c.secondary_p95_ms),
                    ms(c.secondary_output_per_call),
                    dollars(c.secondary_per_1000),
                ],
            ],
        )
    return out


def timeline(report: Report) -> list[str]:
    out = ["Stage changes (from the config.applied lines)"]
    out += table(
        [("when", 20), ("route", 24), ("stage", 24), ("source", 8)],
        [[t.at or "-", t.route, t.stage, t.source or "-"] for t in report.timeline]
        or [["none logged", "", "", ""]],
    )
    return out
