"""The report's shape: what `build_report` fills in and the renderers show."""

from dataclasses import dataclass, field

RECENT_DAYS = 92  # the text and HTML reports show the last quarter's days (JSON: all)


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    hangups: int = 0
    streams: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    callers: int = 0
    models: int = 0
    error_rate: float | None = None


@dataclass
class CallerRow:
    caller: str
    requests: int
    share: float
    errors: int
    last_seen: str | None
    models: list[str]


@dataclass
class ModelRow:
    legacy_model: str
    requests: int
    share: float
    errors: int
    callers: int
    upstream_models: list[str]


@dataclass
class RouteRow:
    route: str
    arm: str
    mode: str
    requests: int
    errors: int
    error_rate: float | None
    hangups: int
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    ttfb_p50_ms: float | None
    ttfb_p95_ms: float | None


@dataclass
class AdaptationRow:
    kind: str
    requests: int
    share: float
    top_models: list[tuple[str, int]]
    top_callers: list[tuple[str, int]]


@dataclass
class ShadowRow:
    route: str
    comparisons: int
    skipped: int  # not run: too many shadows in flight
    failed: int
    exact: int
    normalised: int
    stop_match: int
    exact_rate: float | None  # rates are over comparisons that did not fail
    normalised_rate: float | None
    stop_rate: float | None


@dataclass
class DayRow:
    day: str
    requests: int
    errors: int


@dataclass
class Report:
    lines: int = 0
    skipped: int = 0  # not JSON, JSON without an "event", or a value not usable
    outside: int = 0  # events outside --since/--until
    first: str | None = None
    last: str | None = None
    events: dict[str, int] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    callers: list[CallerRow] = field(default_factory=list)
    callers_more: int = 0
    models: list[ModelRow] = field(default_factory=list)
    models_more: int = 0
    routes: list[RouteRow] = field(default_factory=list)
    adaptations: list[AdaptationRow] = field(default_factory=list)
    adaptations_more: int = 0
    shadow: list[ShadowRow] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
