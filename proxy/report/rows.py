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
    served: list[str] = field(default_factory=list)  # "route / arm / mode (calls)"
    passthrough: int = 0  # calls passed through unchanged: not yet on translation
    adaptations: list[tuple[str, int]] = field(default_factory=list)  # (kind, calls)
    cost: str = "unknown"
    flags: list[str] = field(default_factory=list)


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
    similarity: float | None = None  # mean token-set similarity of the answers
    length_ratio: float | None = None  # mean secondary/primary length
    duration_p95_ms: float | None = None  # the secondary's


@dataclass
class StageChange:
    route: str
    at: str | None  # when the config that made it was applied
    stage: str
    source: str | None  # start, sighup, file


@dataclass
class Decision:
    """A route's stage and what to do next, with the evidence."""

    route: str
    stage: str
    verdict: str  # ready, hold, not enough data yet, done
    next_step: str
    reasons: list[str]
    toml: str | None  # the config change for the next step


@dataclass
class ArmRow:
    route: str
    arm: str
    mode: str
    models: list[str]  # upstream models that answered
    requests: int
    errors: int
    error_rate: float | None
    error_interval: tuple[float, float] | None  # Wilson, at the report's confidence
    p50_ms: float | None
    p95_ms: float | None
    p95_interval: tuple[float, float] | None
    ttfb_p50_ms: float | None
    ttfb_p95_ms: float | None
    input_per_call: float | None
    output_per_call: float | None
    adapted: int  # calls with at least one adaptation
    cost: str
    cost_per_1000: float | None


@dataclass
class CostRow:
    scope: str  # route, arm, model or caller
    name: str
    calls: int
    priced_calls: int
    unknown_calls: int  # no token counts (pass-through) or no price: cost unknown
    cost: float | None
    cost_per_1000: float | None


@dataclass
class ModelChoice:
    """A shadow route's two translate arms on different models, compared."""

    route: str
    primary_model: str
    secondary_model: str
    compared: int
    stop_agreement: float | None
    similarity: float | None
    primary_p95_ms: float | None
    secondary_p95_ms: float | None
    primary_output_per_call: float | None
    secondary_output_per_call: float | None  # estimated: primary's x the length ratio
    primary_per_1000: float | None
    secondary_per_1000: float | None  # estimated from the same tokens at its prices


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
    decisions: list[Decision] = field(default_factory=list)
    arms: list[ArmRow] = field(default_factory=list)
    costs: list[CostRow] = field(default_factory=list)
    choices: list[ModelChoice] = field(default_factory=list)
    timeline: list[StageChange] = field(default_factory=list)
    force_mode: str | None = None
    prices_taken: str | None = None
