"""The cockpit's sections of the report page: decisions (each route's stage, verdict,
reasons and config change, first on the page), arms side by side, callers with what
served them, cost, models compared and the stage timeline. Values go through `esc`."""

from proxy.report.markup import esc, ms, num, pct, table
from proxy.report.rows import Report
from proxy.report.usage import dollars

VERDICT_CLASS = {"ready": "ok", "done": "ok", "hold": "hold"}  # else: wait


def _ci(interval: tuple[float, float] | None, percent: bool) -> str:
    if interval is None:
        return "-"
    low, high = interval
    return f"{pct(low)}-{pct(high)}" if percent else f"{ms(low)}-{ms(high)}"


def decisions(report: Report) -> str:
    rows = []
    for d in report.decisions:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in d.reasons)
        change = f"<pre>{esc(d.toml)}</pre>" if d.toml else ""
        verdict = VERDICT_CLASS.get(d.verdict, "wait")
        rows.append(
            f"<tr><td>{esc(d.route)}</td><td>{esc(d.stage)}</td>"
            f'<td><span class="v {verdict}">{esc(d.verdict)}</span></td>'
            f"<td>{esc(d.next_step)}<ul>{reasons}</ul></td><td>{change}</td></tr>"
        )
    body = "".join(rows) or "<tr><td colspan=5>no routes in the log</td></tr>"
    forced = (
        f'<p class="hold">force_mode = {esc(report.force_mode)} is on: routes are not in force</p>'
        if report.force_mode
        else ""
    )
    return (
        '<h2 id="decisions-h">Decisions</h2>'
        + forced
        + '<table id="decisions"><thead><tr><th>route</th>'
        "<th>stage</th><th>verdict</th><th>next step, and why</th><th>config change (TOML)"
        f'</th></tr></thead><tbody>{body}</tbody><tfoot><tr><td colspan=5 class="end">'
        "</td></tr></tfoot></table>"
        '<p class="legend">Stages: passthrough, shadow N %, canary N %, translate, legacy off. '
        "Verdicts: ready (the next step is safe), hold (the evidence says no), not enough "
        "data yet, done. Differences count when significant at the report's confidence "
        "(Wilson intervals for error rates, order-statistic intervals for p95). Config change: "
        "set these keys of the route's [[routes]] table; its match and its arms' other keys "
        "stay.</p>"
    )


def arms(report: Report) -> str:
    header = [
        "route",
        "arm",
        "mode",
        "models",
        "requests",
        "errors",
        "error rate",
        "95% CI",
        "p50",
        "p95",
        "p95 CI",
        "TTFB p50",
        "TTFB p95",
        "tokens in/out",
        "adapted",
        "cost",
        "per 1,000",
    ]
    rows = [
        [
            a.route,
            a.arm,
            a.mode,
            ", ".join(a.models) or "-",
            a.requests,
            a.errors,
            pct(a.error_rate),
            _ci(a.error_interval, True),
            ms(a.p50_ms),
            ms(a.p95_ms),
            _ci(a.p95_interval, False),
            ms(a.ttfb_p50_ms),
            ms(a.ttfb_p95_ms),
            f"{ms(a.input_per_call)}/{ms(a.output_per_call)}",
            a.adapted,
            a.cost,
            dollars(a.cost_per_1000),
        ]
        for a in report.arms
    ]
    return (
        '<h2>Arms side by side</h2><p class="legend">One row per arm of each route. Errors: '
        "status 400 or more, or an error type, among answered calls (client hang-ups apart). "
        "Durations in ms. Tokens per call with token counts; adapted: calls the bridge "
        "changed. Cost unknown: no tokens logged (pass-through) or no price.</p>"
        + table("arms", header, rows)
    )


def callers(report: Report) -> str:
    rows = [
        [
            c.caller,
            c.requests,
            "; ".join(c.served),
            c.passthrough,
            ", ".join(f"{k} ({n:,})" for k, n in c.adaptations) or "-",
            "; ".join(c.flags) or "-",
            c.cost,
        ]
        for c in report.callers
    ]
    header = [
        "caller",
        "requests",
        "served by (route / arm / mode)",
        "passed through",
        "adaptations",
        "flags",
        "cost",
    ]
    return (
        '<h2>Callers</h2><p class="legend">Callers are key fingerprints. Flags: still on '
        "pass-through (not yet translated), prompts that need adaptations (how often).</p>"
        + table("caller-routes", header, rows)
    )


def costs(report: Report) -> str:
    rows = [
        [c.scope, c.name, c.calls, c.unknown_calls, dollars(c.cost), dollars(c.cost_per_1000)]
        for c in report.costs
    ]
    return (
        f'<h2>Cost</h2><p class="legend">Prices per million tokens as of '
        f"{esc(report.prices_taken)}. Unknown: calls without token counts (pass-through) "
        "or on a model without a price; never counted as $0.</p>"
        + table("costs", ["scope", "name", "calls", "unknown", "cost", "per 1,000 calls"], rows)
    )


def choices(report: Report) -> str:
    if not report.choices:
        return ""
    rows = []
    for c in report.choices:
        rows.append(
            [
                c.route,
                "primary",
                c.primary_model,
                "-",
                "-",
                ms(c.primary_p95_ms),
                ms(c.primary_output_per_call),
                dollars(c.primary_per_1000),
            ]
        )
        rows.append(
            [
                c.route,
                "secondary",
                c.secondary_model,
                pct(c.stop_agreement),
                pct(c.similarity),
                ms(c.secondary_p95_ms),
                ms(c.secondary_output_per_call),
                dollars(c.secondary_per_1000),
            ]
        )
    header = [
        "route",
        "arm",
        "model",
        "stop agrees",
        "similar",
        "p95 ms",
        "output/call",
        "per 1,000",
    ]
    return (
        '<h2>Models compared</h2><p class="legend">Two translate arms on different models in '
        "shadow: the secondary's output tokens are estimated from its answer length.</p>"
        + table("choices", header, rows)
    )


def timeline(report: Report) -> str:
    rows = [[t.at or "-", t.route, t.stage, t.source or "-"] for t in report.timeline]
    return "<h2>Stage changes</h2>" + table("timeline", ["when", "route", "stage", "source"], rows)


def summary_line(report: Report) -> str:
    t = report.totals
    return (
        f'<p id="summary-line">{num(t.requests)} legacy requests from {num(t.callers)} '
        f"callers, {pct(t.error_rate)} errors, {esc(report.first or '-')} .. "
        f"{esc(report.last or '-')}</p>"
    )
