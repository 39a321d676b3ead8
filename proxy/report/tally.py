"""The tally: per-caller, per-model, per-route-and-arm, per-adaptation, per-shadow-route
and per-day counts and token usage, fed one usable `complete` or `shadow` log line at a
time, and the `config.applied` lines as they come.

A million lines must tally in seconds: a `complete` line is counted once, in the cell of
its caller, legacy model, upstream model, route, arm and mode (plus its route's timings,
its day and its adaptations); `finish` folds the cells into callers, models and routes.
Memory grows with the number of distinct cells, never with the number of lines."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from proxy.obs.record import adaptation_label, call_failed
from proxy.report.quantiles import Quantiles
from proxy.report.rows import Report
from proxy.report.usage import Usage

NO_KEY = "(no key)"
UNKNOWN = "(unknown)"  # a request refused before its model was read


K = TypeVar("K")
V = TypeVar("V")


def _entry(table: dict[K, V], key: K, make: Callable[[], V]) -> V:
    """`table[key]`, made first if missing (setdefault would make one every time)."""
    entry = table.get(key)
    if entry is None:
        entry = table[key] = make()
    return entry


def _str(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None or (a is not None and a > b) else b


Cell = tuple[str, str, str | None, str, str, str]  # caller, legacy, upstream, route, arm, mode


@dataclass(slots=True)
class _Count:
    requests: int = 0
    errors: int = 0
    hangups: int = 0
    streams: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    tokened: int = 0  # calls with token counts
    adapted: int = 0
    last: datetime | None = None


@dataclass
class _Caller:
    requests: int = 0
    errors: int = 0
    last: datetime | None = None
    models: Counter[str] = field(default_factory=Counter)
    served: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # route, arm, mode
    adaptations: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)


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
    adapted: int = 0  # calls with at least one adaptation
    upstream: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    last: datetime | None = None


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
    similar: float = 0.0  # sum of the similarities logged, over `similar_n`
    similar_n: int = 0
    ratio: float = 0.0  # sum of the length ratios logged, over `ratio_n`
    ratio_n: int = 0
    duration: Quantiles = field(default_factory=Quantiles)  # the secondary's


class Tally:
    def __init__(self) -> None:
        self.report = Report()
        self.events: Counter[str] = Counter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.cells: dict[Cell, _Count] = {}
        self.timings: dict[tuple[str, str], tuple[Quantiles, Quantiles]] = {}
        self.callers: dict[str, _Caller] = {}
        self.models: dict[str, _Model] = {}
        self.routes: dict[tuple[str, str], _Route] = {}
        self.adaptations: dict[str, _Adaptation] = {}
        self.shadows: dict[str, _Shadow] = {}
        self.days: dict[date, list[int]] = {}
        self.configs: list[tuple[datetime | None, dict[str, Any]]] = []  # config.applied

    def complete(self, line: dict[str, Any], moment: datetime | None) -> None:
        """Count one call (every value's type was checked by lines.usable; an empty
        text is not known)."""
        get = line.get
        status = get("status")
        hangup = status is None or get("client_disconnected") is True
        failed = call_failed(status, get("error_type"), hangup)
        caller, legacy = get("caller") or NO_KEY, get("legacy_model") or UNKNOWN
        route, arm = get("route") or "default", get("arm") or "primary"
        key = (
            caller,
            legacy,
            get("upstream_model") or None,
            route,
            arm,
            get("mode") or "translate",
        )
        count = self.cells.get(key)
        if count is None:
            count = self.cells[key] = _Count()
        count.requests += 1
        count.errors += failed
        count.hangups += hangup
        count.streams += get("stream") is True
        input_tokens, output_tokens = get("input_tokens"), get("output_tokens")
        if input_tokens is not None or output_tokens is not None:
            count.tokened += 1
            count.input_tokens += input_tokens or 0
            count.output_tokens += output_tokens or 0
        if moment is not None:
            if count.last is None or moment > count.last:
                count.last = moment
            day = self.days.get(moment.date())
            if day is None:
                day = self.days[moment.date()] = [0, 0]
            day[0] += 1
            day[1] += failed
        timings = self.timings.get((route, arm))
        if timings is None:
            timings = self.timings[(route, arm)] = (Quantiles(), Quantiles())
        if (duration := get("duration_ms")) is not None:
            timings[0].add(duration)
        if (ttfb := get("ttfb_ms")) is not None:
            timings[1].add(ttfb)
        if logged := get("adaptations"):
            count.adapted += 1
            for kind in {adaptation_label(a) for a in logged}:
                adaptation = _entry(self.adaptations, kind, _Adaptation)
                adaptation.requests += 1
                adaptation.models[legacy] += 1
                adaptation.callers[caller] += 1

    def finish(self) -> None:
        """Fold the cells into totals, callers, models and routes (once, at the end)."""
        totals = self.report.totals
        for (caller_key, legacy, upstream, route_key, arm, mode), n in self.cells.items():
            totals.requests += n.requests
            totals.errors += n.errors
            totals.hangups += n.hangups
            totals.streams += n.streams
            totals.input_tokens += n.input_tokens
            totals.output_tokens += n.output_tokens
            caller = _entry(self.callers, caller_key, _Caller)
            caller.requests += n.requests
            caller.errors += n.errors
            caller.models[legacy] += n.requests
            caller.last = _later(caller.last, n.last)
            caller.served[(route_key, arm, mode)] += n.requests
            model = _entry(self.models, legacy, _Model)
            model.requests += n.requests
            model.errors += n.errors
            model.callers.add(caller_key)
            route = _entry(self.routes, (route_key, arm), _Route)
            route.requests += n.requests
            route.errors += n.errors
            route.hangups += n.hangups
            route.modes.add(mode)
            route.adapted += n.adapted
            route.last = _later(route.last, n.last)
            if upstream:
                model.upstream[upstream] += n.requests
                route.upstream[upstream] += n.requests
            for usage in (caller.usage, route.usage):
                usage.count(upstream, n.tokened, n.input_tokens, n.output_tokens)
                usage.untokened += n.requests - n.tokened
        for key, (duration, ttfb) in self.timings.items():
            self.routes[key].duration, self.routes[key].ttfb = duration, ttfb
        for kind, adaptation in self.adaptations.items():
            for caller_key, calls in adaptation.callers.items():
                self.callers[caller_key].adaptations[kind] = calls

    def shadow(self, line: dict[str, Any]) -> None:
        shadow = _entry(self.shadows, _str(line.get("route"), "default"), _Shadow)
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
        if (similar := line.get("similarity")) is not None:
            shadow.similar += similar
            shadow.similar_n += 1
        if (ratio := line.get("length_ratio")) is not None:
            shadow.ratio += ratio
            shadow.ratio_n += 1
        if (duration := line.get("duration_ms")) is not None:
            shadow.duration.add(float(duration))

    def applied(self, line: dict[str, Any], moment: datetime | None) -> None:
        self.configs.append((moment, line))
