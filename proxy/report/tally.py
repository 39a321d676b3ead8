"""The tally: per-caller, per-model, per-route-and-arm, per-adaptation, per-shadow-route
and per-day counts and token usage, fed one usable `complete` or `shadow` log line at a
time, and the `config.applied` lines as they come."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from proxy.obs.record import adaptation_label, call_failed
from proxy.report.quantiles import Quantiles
from proxy.report.rows import Report
from proxy.report.usage import Usage

NO_KEY = "(no key)"
UNKNOWN = "(unknown)"  # a request refused before its model was read


def _str(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


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
        self.callers: dict[str, _Caller] = {}
        self.models: dict[str, _Model] = {}
        self.routes: dict[tuple[str, str], _Route] = {}
        self.adaptations: dict[str, _Adaptation] = {}
        self.shadows: dict[str, _Shadow] = {}
        self.days: dict[date, list[int]] = {}
        self.usage = Usage()  # by upstream model, every call
        self.configs: list[tuple[datetime | None, dict[str, Any]]] = []  # config.applied

    def complete(self, line: dict[str, Any], moment: datetime | None) -> None:
        totals = self.report.totals
        status = line.get("status")
        hangup = status is None or line.get("client_disconnected") is True
        failed = call_failed(status, line.get("error_type"), hangup)
        caller_key = _str(line.get("caller"), NO_KEY)
        model_key = _str(line.get("legacy_model"), UNKNOWN)
        totals.requests += 1
        totals.errors += failed
        totals.hangups += hangup
        totals.streams += line.get("stream") is True
        totals.input_tokens += line.get("input_tokens") or 0
        totals.output_tokens += line.get("output_tokens") or 0
        tokens = (line.get("upstream_model"), line.get("input_tokens"), line.get("output_tokens"))
        self.usage.add(*tokens)
        adaptations = {adaptation_label(a) for a in line.get("adaptations") or ()}

        caller = self.callers.setdefault(caller_key, _Caller())
        caller.requests += 1
        caller.errors += failed
        caller.models[model_key] += 1
        if moment is not None and (caller.last is None or moment > caller.last):
            caller.last = moment
        caller.usage.add(*tokens)
        caller.adaptations.update(adaptations)

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
        mode = _str(line.get("mode"), "translate")
        route.modes.add(mode)
        caller.served[(*key, mode)] += 1
        route.usage.add(*tokens)
        route.adapted += bool(adaptations)
        if upstream:
            route.upstream[upstream] += 1
        if moment is not None and (route.last is None or moment > route.last):
            route.last = moment
        if (duration := line.get("duration_ms")) is not None:
            route.duration.add(float(duration))
        if (ttfb := line.get("ttfb_ms")) is not None:
            route.ttfb.add(float(ttfb))

        for kind in adaptations:
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
