"""The migration report: who still makes the legacy call, how much, how well, and what
the bridge had to adapt, read from the bridge's own JSON log lines.

`build_report(lines)` streams: memory grows with the number of distinct callers, models,
routes, adaptation kinds and days, never with the number of lines. Durations and TTFB
quantiles are exact (nearest rank) while a route and arm has at most `EXACT_SAMPLES`
requests; past that they come from a fixed log-bucket histogram, within about 4.5 %.
`Report` (rows.py) is plain dataclasses, so `render_json` is `asdict` as JSON.
"""

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from proxy.report.rows import (
    AdaptationRow,
    CallerRow,
    DayRow,
    ModelRow,
    Report,
    RouteRow,
    ShadowRow,
)

EXACT_SAMPLES = 10_000  # per route and arm, before quantiles switch to the histogram
BUCKETS_PER_DOUBLING = 16  # histogram resolution: 2 ** (1/16) ~ 4.4 % per bucket
BUCKET_FLOOR_MS = 0.1
NO_KEY = "(no key)"
UNKNOWN = "(unknown)"  # a request refused before its model was read


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp; one without a zone is UTC. ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Quantiles:
    """Exact nearest-rank quantiles up to `EXACT_SAMPLES` values, then a histogram."""

    def __init__(self) -> None:
        self.exact: list[float] | None = []
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.buckets[self._bucket(value)] += 1
        if self.exact is not None:
            self.exact.append(value)
            if len(self.exact) > EXACT_SAMPLES:
                self.exact = None

    @staticmethod
    def _bucket(value: float) -> int:
        if value <= BUCKET_FLOOR_MS:
            return 0
        return math.ceil(math.log2(value / BUCKET_FLOOR_MS) * BUCKETS_PER_DOUBLING)

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                upper = BUCKET_FLOOR_MS * 2 ** (bucket / BUCKETS_PER_DOUBLING)
                return round(min(max(upper, self.low), self.high), 2)
        return self.high  # pragma: no cover (the buckets hold every value)


def adaptation_kind(adaptation: str) -> str:
    """`capped_max_tokens:100000->64000` is one kind, `capped_max_tokens`; the others
    (`local_stop`, `dropped_field:tags`, `dropped_top_p`) are their own kind."""
    return adaptation.split(":", 1)[0] if "->" in adaptation else adaptation


STATUSES = (100, 599)  # the HTTP status codes
MAX_COUNT = 2**53  # tokens: the largest integer a JSON number holds exactly
MAX_MS = 366 * 24 * 3600 * 1000.0  # a year: no call lasts longer


def _is_int(value: object, low: float, high: float) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_ms(value: object) -> bool:
    """A duration: a number from 0 to MAX_MS (not NaN, not infinite)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return 0 <= value <= MAX_MS


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_flag(value: object) -> bool:
    return isinstance(value, bool)


def _is_texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_SHARED: dict[str, Callable[[object], bool]] = {
    "status": lambda v: _is_int(v, *STATUSES),
    "error_type": _is_text,
    "route": _is_text,
}
# What the report reads of each event, and what it can use: null (or no such field) is
# "not known"; any other value of the wrong type or out of range makes the line unusable.
FIELDS: dict[str, dict[str, Callable[[object], bool]]] = {
    "complete": _SHARED
    | {
        "client_disconnected": _is_flag,
        "caller": _is_text,
        "legacy_model": _is_text,
        "upstream_model": _is_text,
        "arm": _is_text,
        "mode": _is_text,
        "stream": _is_flag,
        "input_tokens": lambda v: _is_int(v, 0, MAX_COUNT),
        "output_tokens": lambda v: _is_int(v, 0, MAX_COUNT),
        "duration_ms": _is_ms,
        "ttfb_ms": _is_ms,
        "adaptations": _is_texts,
    },
    "shadow": _SHARED
    | {name: _is_flag for name in ("skipped", "exact_match", "normalised_match", "stop_match")},
}


def usable(line: dict[str, Any]) -> bool:
    """Whether every field the report reads of this event is null, absent, or a value
    it can use (see FIELDS)."""
    checks = FIELDS.get(line["event"], {})
    return all(line.get(name) is None or ok(line[name]) for name, ok in checks.items())


def _str(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class _Caller:
    requests: int = 0
    errors: int = 0
    last: datetime | None = None
    models: Counter[str] = field(default_factory=Counter)


@dataclass
class _Model:
    requests: int = 0
    errors: int = 0
    callers: set[str] = field(default_factory=set)
    upstream: Counter[str] = field(default_factory=Counter)


@dataclass
class _Route:
    requests: int = 0
    errors: int = 0
    hangups: int = 0
    modes: set[str] = field(default_factory=set)
    duration: Quantiles = field(default_factory=Quantiles)
    ttfb: Quantiles = field(default_factory=Quantiles)


@dataclass
class _Adaptation:
    requests: int = 0
    models: Counter[str] = field(default_factory=Counter)
    callers: Counter[str] = field(default_factory=Counter)


@dataclass
class _Shadow:
    comparisons: int = 0
    skipped: int = 0
    failed: int = 0
    exact: int = 0
    normalised: int = 0
    stop_match: int = 0


class _Tally:
    def __init__(self) -> None:
        self.report = Report()
        self.events: Counter[str] = Counter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.callers: dict[str, _Caller] = {}
        self.models: dict[str, _Model] = {}
        self.routes: dict[tuple[str, str], _Route] = {}
        self.adaptations: dict[str, _Adaptation] = {}
        self.shadows: dict[str, _Shadow] = {}
        self.days: dict[date, list[int]] = {}

    def complete(self, line: dict[str, Any], moment: datetime | None) -> None:
        totals = self.report.totals
        status = line.get("status")
        hangup = status is None or line.get("client_disconnected") is True
        failed = not hangup and (
            (status is not None and status >= 400) or line.get("error_type") is not None
        )
        caller_key = _str(line.get("caller"), NO_KEY)
        model_key = _str(line.get("legacy_model"), UNKNOWN)
        totals.requests += 1
        totals.errors += failed
        totals.hangups += hangup
        totals.streams += line.get("stream") is True
        totals.input_tokens += line.get("input_tokens") or 0
        totals.output_tokens += line.get("output_tokens") or 0

        caller = self.callers.setdefault(caller_key, _Caller())
        caller.requests += 1
        caller.errors += failed
        caller.models[model_key] += 1
        if moment is not None and (caller.last is None or moment > caller.last):
            caller.last = moment

        model = self.models.setdefault(model_key, _Model())
        model.requests += 1
        model.errors += failed
        model.callers.add(caller_key)
        if upstream := line.get("upstream_model"):
            model.upstream[upstream] += 1

        key = (_str(line.get("route"), "default"), _str(line.get("arm"), "primary"))
        route = self.routes.setdefault(key, _Route())
        route.requests += 1
        route.errors += failed
        route.hangups += hangup
        route.modes.add(_str(line.get("mode"), "translate"))
        if (duration := line.get("duration_ms")) is not None:
            route.duration.add(float(duration))
        if (ttfb := line.get("ttfb_ms")) is not None:
            route.ttfb.add(float(ttfb))

        for kind in {adaptation_kind(a) for a in line.get("adaptations") or ()}:
            adaptation = self.adaptations.setdefault(kind, _Adaptation())
            adaptation.requests += 1
            adaptation.models[model_key] += 1
            adaptation.callers[caller_key] += 1

        if moment is not None:
            day = self.days.setdefault(moment.date(), [0, 0])
            day[0] += 1
            day[1] += failed

    def shadow(self, line: dict[str, Any]) -> None:
        shadow = self.shadows.setdefault(_str(line.get("route"), "default"), _Shadow())
        if line.get("skipped") is True:
            shadow.skipped += 1
            return
        shadow.comparisons += 1
        status = line.get("status")
        if status is None or status >= 400 or line.get("error_type") is not None:
            shadow.failed += 1
            return
        shadow.exact += line.get("exact_match") is True
        shadow.normalised += line.get("normalised_match") is True
        shadow.stop_match += line.get("stop_match") is True

    def finish(self, top: int) -> Report:
        report, totals = self.report, self.report.totals
        report.events = dict(self.events.most_common())
        report.first, report.last = iso(self.first), iso(self.last)
        totals.callers, totals.models = len(self.callers), len(self.models)
        totals.error_rate = _rate(totals.errors, totals.requests - totals.hangups)
        n = totals.requests

        callers = sorted(self.callers.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        report.callers = [
            CallerRow(
                name, c.requests, _share(c.requests, n), c.errors, iso(c.last), _top(c.models)
            )
            for name, c in callers[:top]
        ]
        report.callers_more = max(0, len(callers) - top)

        models = sorted(self.models.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        report.models = [
            ModelRow(
                name, m.requests, _share(m.requests, n), m.errors, len(m.callers), _top(m.upstream)
            )
            for name, m in models[:top]
        ]
        report.models_more = max(0, len(models) - top)

        routes = sorted(self.routes.items(), key=lambda kv: (-kv[1].requests, kv[0]))
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

        kinds = sorted(self.adaptations.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        report.adaptations = [
            AdaptationRow(
                kind, a.requests, _share(a.requests, n), _counts(a.models), _counts(a.callers)
            )
            for kind, a in kinds[:top]
        ]
        report.adaptations_more = max(0, len(kinds) - top)

        shadows = sorted(self.shadows.items(), key=lambda kv: (-kv[1].comparisons, kv[0]))
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
            )
            for name, s in shadows
        ]
        report.days = [DayRow(d.isoformat(), r, e) for d, (r, e) in sorted(self.days.items())]
        return report


def _top(counter: Counter[str]) -> list[str]:
    return [name for name, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _counts(counter: Counter[str], top: int = 3) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def build_report(
    lines: Iterable[str | bytes],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 50,
) -> Report:
    """Aggregate log lines. Lines that are not a JSON object with an "event", or that
    hold a value the report cannot use (see FIELDS), are skipped and counted; with
    `since`/`until`, events outside [since, until) (or without a readable timestamp)
    are counted in `outside` and left out of everything else."""
    tally = _Tally()
    report = tally.report
    for raw in lines:
        report.lines += 1
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not (isinstance(line, dict) and isinstance(line.get("event"), str) and usable(line)):
            report.skipped += 1
            continue
        try:
            moment: datetime | None = parse_timestamp(line["timestamp"])
        except (KeyError, TypeError, ValueError, OverflowError):
            moment = None
        if (since or until) and (
            moment is None or (since and moment < since) or (until and moment >= until)
        ):
            report.outside += 1
            continue
        if moment is not None:
            tally.first = moment if tally.first is None else min(tally.first, moment)
            tally.last = moment if tally.last is None else max(tally.last, moment)
        tally.events[line["event"]] += 1
        if line["event"] == "complete":
            tally.complete(line, moment)
        elif line["event"] == "shadow":
            tally.shadow(line)
    return tally.finish(top)


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2, ensure_ascii=False)
