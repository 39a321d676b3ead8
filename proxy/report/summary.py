"""The tally summarised as a `Report`: ranked rows with shares, error and agreement rates
and quantiles; and `render_json`, the Report as JSON (`Report` is plain dataclasses, so
that is `asdict`)."""

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime

from proxy.report.rows import (
    AdaptationRow,
    CallerRow,
    DayRow,
    ModelRow,
    Report,
    RouteRow,
    ShadowRow,
)
from proxy.report.tally import Tally


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rank(tally: Tally, top: int) -> Report:
    """The tally as a Report: rows ranked by count (ties by name); callers, models and
    adaptations cut at `top`."""
    tally.finish()
    report, totals = tally.report, tally.report.totals
    report.events = dict(tally.events.most_common())
    report.first, report.last = iso(tally.first), iso(tally.last)
    totals.callers, totals.models = len(tally.callers), len(tally.models)
    totals.error_rate = _rate(totals.errors, totals.requests - totals.hangups)
    n = totals.requests

    callers = sorted(tally.callers.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    report.callers = [
        CallerRow(name, c.requests, _share(c.requests, n), c.errors, iso(c.last), _top(c.models))
        for name, c in callers[:top]
    ]
    report.callers_more = max(0, len(callers) - top)

    models = sorted(tally.models.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    report.models = [
        ModelRow(
            name, m.requests, _share(m.requests, n), m.errors, len(m.callers), _top(m.upstream)
        )
        for name, m in models[:top]
    ]
    report.models_more = max(0, len(models) - top)

    routes = sorted(tally.routes.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    report.routes = [
        RouteRow(
            route=name,
            arm=arm,
            mode="+".join(sorted(r.modes)),
            requests=r.requests,
            errors=r.errors,
            error_rate=_rate(r.errors, r.requests - r.hangups),
            hangups=r.hangups,
            duration_p50_ms=r.duration.quantile(0.5),
            duration_p95_ms=r.duration.quantile(0.95),
            ttfb_p50_ms=r.ttfb.quantile(0.5),
            ttfb_p95_ms=r.ttfb.quantile(0.95),
        )
        for (name, arm), r in routes
    ]

    kinds = sorted(tally.adaptations.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    report.adaptations = [
        AdaptationRow(
            kind, a.requests, _share(a.requests, n), _counts(a.models), _counts(a.callers)
        )
        for kind, a in kinds[:top]
    ]
    report.adaptations_more = max(0, len(kinds) - top)

    shadows = sorted(tally.shadows.items(), key=lambda kv: (-kv[1].comparisons, kv[0]))
    report.shadow = [
        ShadowRow(
            route=name,
            comparisons=s.comparisons,
            skipped=s.skipped,
            failed=s.failed,
            exact=s.exact,
            normalised=s.normalised,
            stop_match=s.stop_match,
            exact_rate=_rate(s.exact, s.comparisons - s.failed),
            normalised_rate=_rate(s.normalised, s.comparisons - s.failed),
            stop_rate=_rate(s.stop_match, s.comparisons - s.failed),
            similarity=round(s.similar / s.similar_n, 4) if s.similar_n else None,
            length_ratio=round(s.ratio / s.ratio_n, 4) if s.ratio_n else None,
            duration_p95_ms=s.duration.quantile(0.95),
        )
        for name, s in shadows
    ]
    report.days = [DayRow(d.isoformat(), r, e) for d, (r, e) in sorted(tally.days.items())]
    return report


def _top(counter: Counter[str]) -> list[str]:
    return [name for name, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _counts(counter: Counter[str], top: int = 3) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2, ensure_ascii=False)
