"""The cockpit: from the tally, each route's arms side by side, cost per route, arm,
model and caller, callers with what served them, two models compared, the stage
timeline, and each route's verdict (verdicts.py). Deterministic: the same lines, in
any order of files, give the same rows."""

from proxy.config.report_table import ReportConfig
from proxy.report.rows import ArmRow, CostRow, ModelChoice, Report, ShadowRow
from proxy.report.stages import RouteConfig, configs_in_force
from proxy.report.stats import wilson, z_of
from proxy.report.tally import Tally
from proxy.report.usage import Usage, cost, count_calls
from proxy.report.verdicts import verdicts


def _per_call(total: int, calls: int) -> float | None:
    return round(total / calls, 1) if calls else None


def decide(tally: Tally, report: Report, config: ReportConfig) -> None:
    z = z_of(config.confidence)
    applied = configs_in_force(tally.configs)
    report.timeline, report.force_mode = applied.changes, applied.force
    report.prices_taken = config.prices_taken
    keys = sorted(tally.routes, key=lambda k: (k[0], k[1] != "primary", k[1]))
    for name, arm in keys:
        r = tally.routes[(name, arm)]
        calls, input_tokens, output_tokens = r.usage.tokened()
        price = cost(r.usage, config)
        report.arms.append(
            ArmRow(
                route=name,
                arm=arm,
                mode="+".join(sorted(r.modes)),
                models=sorted(r.upstream, key=lambda m: (-r.upstream[m], m)),
                requests=r.requests,
                errors=r.errors,
                error_rate=round(r.errors / (r.requests - r.hangups), 4)
                if r.requests > r.hangups
                else None,
                error_interval=wilson(r.errors, r.requests - r.hangups, z),
                p50_ms=r.duration.quantile(0.5),
                p95_ms=r.duration.quantile(0.95),
                p95_interval=r.duration.interval(0.95, z),
                ttfb_p50_ms=r.ttfb.quantile(0.5),
                ttfb_p95_ms=r.ttfb.quantile(0.95),
                input_per_call=_per_call(input_tokens, calls),
                output_per_call=_per_call(output_tokens, calls),
                adapted=r.adapted,
                cost=price.shown(),
                cost_per_1000=price.per_1000,
            )
        )
    _costs(tally, report, config)
    _callers(tally, report, config)
    report.choices = [
        c for s in report.shadow if (c := _choice(s, applied.shadowed.get(s.route), report, config))
    ]
    report.decisions = verdicts(tally, report, applied.routes, applied.force, config)


def _cost_row(scope: str, name: str, usage: Usage, config: ReportConfig) -> CostRow:
    price = cost(usage, config)
    calls = usage.tokened()[0] + usage.untokened
    return CostRow(
        scope, name, calls, price.priced_calls, price.unknown_calls, price.dollars, price.per_1000
    )


def _costs(tally: Tally, report: Report, config: ReportConfig) -> None:
    rows = [_cost_row("route", name, _merged(tally, name), config) for name in _route_names(tally)]
    rows += [
        _cost_row("arm", f"{name} / {arm}", tally.routes[(name, arm)].usage, config)
        for name, arm in sorted(tally.routes)
    ]
    every = _merged(tally, None)
    for model in sorted(every.by_model):
        usage = Usage({model: every.by_model[model]})
        rows.append(_cost_row("model", model, usage, config))
    if every.untokened:
        rows.append(
            _cost_row("model", "(pass-through: no tokens)", Usage({}, every.untokened), config)
        )
    rows += [
        _cost_row("caller", c.caller, tally.callers[c.caller].usage, config) for c in report.callers
    ]
    report.costs = rows


def _route_names(tally: Tally) -> list[str]:
    return sorted({name for name, _ in tally.routes})


def _merged(tally: Tally, name: str | None) -> Usage:
    """The usage of route `name`'s arms together (None: of every route)."""
    merged = Usage()
    for (route, _), r in sorted(tally.routes.items()):
        if name is not None and route != name:
            continue
        merged.untokened += r.usage.untokened
        for model, (calls, i, o) in r.usage.by_model.items():
            row = merged.by_model.setdefault(model, [0, 0, 0])
            row[0], row[1], row[2] = row[0] + calls, row[1] + i, row[2] + o
    return merged


def _callers(tally: Tally, report: Report, config: ReportConfig) -> None:
    for row in report.callers:
        c = tally.callers[row.caller]
        served = sorted(c.served.items(), key=lambda kv: (-kv[1], kv[0]))
        row.served = [f"{r} / {a} / {m} ({n:,})" for (r, a, m), n in served]
        row.passthrough = sum(n for (_, _, m), n in c.served.items() if m == "passthrough")
        row.adaptations = sorted(c.adaptations.items(), key=lambda kv: (-kv[1], kv[0]))
        row.cost = cost(c.usage, config).shown()
        if row.passthrough:
            row.flags.append(f"still on pass-through ({count_calls(row.passthrough)})")
        if row.adaptations:
            row.flags.append(
                "prompts need adaptations: "
                + ", ".join(f"{kind} {n / c.requests:.0%}" for kind, n in row.adaptations[:3])
            )


def _choice(
    s: ShadowRow, route: RouteConfig | None, report: Report, config: ReportConfig
) -> ModelChoice | None:
    """Two translate arms on different models: the secondary's tokens are not logged in
    a shadow, so its output is estimated as the primary's times the length ratio."""
    if route is None:
        return None
    arms = route.arms
    if set(arms) != {"primary", "secondary"} or {a.mode for a in arms.values()} != {"translate"}:
        return None
    first, second = arms["primary"].model, arms["secondary"].model
    primary = next((a for a in report.arms if a.route == s.route and a.arm == "primary"), None)
    if not first or not second or first == second or primary is None:
        return None
    out = primary.output_per_call
    est = None if out is None or s.length_ratio is None else round(out * s.length_ratio, 1)
    return ModelChoice(
        route=s.route,
        primary_model=first,
        secondary_model=second,
        compared=s.comparisons - s.failed,
        stop_agreement=s.stop_rate,
        similarity=s.similarity,
        primary_p95_ms=primary.p95_ms,
        secondary_p95_ms=s.duration_p95_ms,
        primary_output_per_call=out,
        secondary_output_per_call=est,
        primary_per_1000=_per_1000(first, primary.input_per_call, out, config),
        secondary_per_1000=_per_1000(second, primary.input_per_call, est, config),
    )


def _per_1000(
    model: str, inp: float | None, out: float | None, config: ReportConfig
) -> float | None:
    price = config.price(model)
    if price is None or inp is None or out is None:
        return None
    return round((inp * price.input + out * price.output) / 1e6 * 1000, 6)
