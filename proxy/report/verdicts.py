"""Each route's verdict: its stage, the evidence from the log, and the next safe step
(with the config change as TOML) or why to hold. "Not enough data yet" is a verdict.
Differences between arms count only when significant at the report's confidence:
Wilson intervals for error rates, order-statistic intervals for p95 latency."""

from proxy.config.report_table import ReportConfig
from proxy.report.rows import ArmRow, Decision, Report, ShadowRow
from proxy.report.stages import ArmConfig, RouteConfig, stage, toml
from proxy.report.stats import wilson, worse, z_of
from proxy.report.tally import Tally

SKIPPED = ("(unrouted)", "forced")  # not routes: refused before routing, the kill switch
NOT_ENOUGH = "not enough data yet"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ci(interval: tuple[float, float] | None, unit: str = "%") -> str:
    if interval is None:
        return ""
    if unit == "%":
        return f" (95% CI {interval[0]:.1%}-{interval[1]:.1%})"
    return f" (CI {interval[0]:.0f}-{interval[1]:.0f} ms)"


def verdicts(
    tally: Tally,
    report: Report,
    routes: dict[str, RouteConfig],
    force: str | None,
    config: ReportConfig,
) -> list[Decision]:
    names = sorted({a.route for a in report.arms} | set(routes) | {s.route for s in report.shadow})
    decisions = []
    for name in names:
        if name in SKIPPED:
            continue
        arms = {a.arm: a for a in report.arms if a.route == name}
        route = routes.get(name)
        if route is None and tally.configs and name != "default":
            reason = "not in the latest config.applied line: its calls go by another route"
            decision = Decision(
                name, "removed", "done", "nothing: the route is gone", [reason], None
            )
        elif route is None:
            decision = _decide(tally, report, _inferred(name, arms, report), arms, config)
            if name != "default":
                decision.reasons.append("stage read from the calls: no config.applied line")
        else:
            decision = _decide(tally, report, route, arms, config)
        if force:
            decision.verdict = "hold"
            decision.reasons.insert(0, f"force_mode = {force} is on: every call goes one way")
            decision.next_step = "turn force_mode off once the incident is over"
            decision.toml = 'force_mode = ""'
        decisions.append(decision)
    return decisions


def _inferred(name: str, arms: dict[str, ArmRow], report: Report) -> RouteConfig:
    """A route no config.applied line describes (a log from before them): its stage
    read from the calls."""
    configs = {
        arm: ArmConfig(
            "passthrough" if row.mode == "passthrough" else "translate",
            row.models[0] if row.models else None,
        )
        for arm, row in arms.items()
    }
    if "secondary" in arms:
        total = sum(a.requests for a in arms.values())
        share = round(100 * arms["secondary"].requests / total) if total else 0
        return RouteConfig(name, "canary", float(share), configs)
    if any(s.route == name for s in report.shadow):
        return RouteConfig(name, "shadow", None, configs)
    mode = configs["primary"].mode if "primary" in configs else "translate"
    return RouteConfig(name, mode, None, configs)


def _decide(
    tally: Tally,
    report: Report,
    route: RouteConfig,
    arms: dict[str, ArmRow],
    config: ReportConfig,
) -> Decision:
    here = stage(route)
    primary, secondary = arms.get("primary"), arms.get("secondary")
    calls = sum(a.requests for a in arms.values())
    callers = sum(1 for c in tally.callers.values() if any(k[0] == route.name for k in c.served))
    if route.mode == "passthrough":
        if not calls:
            return Decision(route.name, here, NOT_ENOUGH, "wait for calls", ["no calls"], None)
        arms_next = {
            "primary": ArmConfig("passthrough", None),
            "secondary": ArmConfig("translate", None),
        }
        step = f"shadow {config.shadow_percent:g} %"
        reasons = [
            f"{calls:,} calls from {callers:,} callers passed through; translation not compared yet"
        ]
        return Decision(
            route.name,
            here,
            "ready",
            step,
            reasons,
            toml(route.name, "shadow", config.shadow_percent, arms_next),
        )
    if route.mode == "translate":
        last = tally.routes.get((route.name, "primary"))
        end = tally.last
        quiet = (
            last is None
            or last.last is None
            or (end is not None and (end - last.last).days >= config.quiet_days)
        )
        if not calls or quiet:
            reason = f"no legacy call in the last {config.quiet_days} days of the log"
            return Decision(route.name, "legacy off", "done", "remove the route", [reason], None)
        adapted = primary.adapted if primary else 0
        reasons = [
            f"{calls:,} calls from {callers:,} callers still on /v1/complete, "
            f"errors {_pct(primary.error_rate if primary else None)}, "
            f"adaptations in {adapted / calls:.1%} of calls"
        ]
        step = "move its callers to the Messages API (see Callers), then switch legacy off"
        return Decision(route.name, here, "ready", step, reasons, None)
    if route.mode == "shadow":
        shadow = next((s for s in report.shadow if s.route == route.name), None)
        return _shadow(tally, route, here, primary, shadow, config)
    return _canary(route, here, primary, secondary, config)


def _shadow(
    tally: Tally,
    route: RouteConfig,
    here: str,
    primary: ArmRow | None,
    shadow: ShadowRow | None,
    config: ReportConfig,
) -> Decision:
    compared = 0 if shadow is None else shadow.comparisons
    if shadow is None or compared < config.min_comparisons:
        reasons = [f"{compared:,} shadow comparisons, {config.min_comparisons:,} needed"]
        return Decision(route.name, here, NOT_ENOUGH, "keep shadowing", reasons, None)
    z = z_of(config.confidence)
    errors = wilson(shadow.failed, compared, z)
    similar = shadow.similarity if shadow.similarity is not None else shadow.normalised_rate
    reasons = [
        f"{compared - shadow.failed:,} compared, stop reason agrees "
        f"{_pct(shadow.stop_rate)}, text similar {_pct(similar)}, secondary errors "
        f"{_pct(shadow.failed / compared)}{_ci(errors)}"
    ]
    holds = []
    if (shadow.stop_rate or 0) < config.min_stop_agreement:
        holds.append(
            f"stop reason agrees {_pct(shadow.stop_rate)}, below {_pct(config.min_stop_agreement)}"
        )
    if (similar or 0) < config.min_similarity:
        holds.append(f"text similar {_pct(similar)}, below {_pct(config.min_similarity)}")
    holds += _errors(errors, primary.error_interval if primary else None, primary, config)
    secondary_p95 = tally.shadows[route.name].duration.interval(0.95, z)
    holds += _latency(shadow.duration_p95_ms, secondary_p95, primary, config)
    step = f"canary {config.canary_steps[0]:g} %"
    change = toml(route.name, "canary", config.canary_steps[0], route.arms)
    return _ending(route.name, here, reasons, holds, step, change)


def _canary(
    route: RouteConfig,
    here: str,
    primary: ArmRow | None,
    secondary: ArmRow | None,
    config: ReportConfig,
) -> Decision:
    answered = [0 if a is None else a.requests for a in (primary, secondary)]
    if primary is None or secondary is None or min(answered) < config.min_requests:
        reasons = [
            f"{answered[1]:,} secondary and {answered[0]:,} primary calls, "
            f"{config.min_requests:,} needed on each"
        ]
        return Decision(route.name, here, NOT_ENOUGH, "keep the canary", reasons, None)
    reasons = [
        f"secondary error rate {_pct(secondary.error_rate)}{_ci(secondary.error_interval)}"
        f" vs primary {_pct(primary.error_rate)}{_ci(primary.error_interval)}; p95 "
        f"{secondary.p95_ms or 0:.0f} ms vs {primary.p95_ms or 0:.0f} ms"
    ]
    holds = _errors(secondary.error_interval, primary.error_interval, primary, config)
    holds += _latency(secondary.p95_ms, secondary.p95_interval, primary, config)
    percent = route.percent or 0.0
    later = [p for p in config.canary_steps if p > percent and p < 100]
    if later:
        step, change = f"canary {later[0]:g} %", toml(route.name, "canary", later[0], route.arms)
    else:
        arm = route.arms.get("secondary", ArmConfig("translate", None))
        step = arm.mode
        change = toml(route.name, arm.mode, None, {"primary": arm})
    return _ending(route.name, here, reasons, holds, step, change)


def _errors(
    secondary: tuple[float, float] | None,
    primary: tuple[float, float] | None,
    primary_row: ArmRow | None,
    config: ReportConfig,
) -> list[str]:
    if worse(secondary, primary) and primary_row is not None:
        return [
            f"secondary error rate worse than primary's {_pct(primary_row.error_rate)} "
            f"(difference significant at {config.confidence:.0%})"
        ]
    if secondary is not None and secondary[0] > config.max_error_rate:
        return [
            f"secondary error rate above {_pct(config.max_error_rate)} "
            f"(significant at {config.confidence:.0%})"
        ]
    return []


def _latency(
    p95: float | None,
    interval: tuple[float, float] | None,
    primary: ArmRow | None,
    config: ReportConfig,
) -> list[str]:
    if primary is None or interval is None or primary.p95_interval is None:
        return []
    allowed = primary.p95_interval[1] * (1 + config.latency_tolerance)
    if interval[0] <= allowed:
        return []
    return [
        f"secondary p95 {p95 or 0:.0f} ms{_ci(interval, 'ms')} vs primary "
        f"{primary.p95_ms or 0:.0f} ms{_ci(primary.p95_interval, 'ms')}: slower by more "
        f"than {config.latency_tolerance:.0%} (significant at {config.confidence:.0%})"
    ]


def _ending(
    name: str, here: str, reasons: list[str], holds: list[str], step: str, change: str | None
) -> Decision:
    if holds:
        return Decision(name, here, "hold", f"hold at {here}", reasons + holds, None)
    return Decision(name, here, "ready", step, reasons, change)
