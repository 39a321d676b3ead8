"""The config file's `[report]` table: the thresholds `complete-bridge report` decides a
route's next step by, and `[report.prices.MODEL]` entries that extend or replace the
built-in price table. Every key has a documented default (docs/migration.md)."""

from dataclasses import dataclass, field, fields, replace
from typing import Any

PRICES_TAKEN = "2025-11-24"  # when the built-in prices were read off Anthropic's price list


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float


# Per model: input and output price per million tokens, as of PRICES_TAKEN. A dated model
# name (claude-haiku-4-5-20251001) is priced as its undated prefix.
PRICES: dict[str, Price] = {
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
}


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """What the report's verdicts need; the defaults are the documented ones."""

    min_requests: int = 200  # per arm, before a canary's arms are compared
    min_comparisons: int = 200  # shadow comparisons, before a shadow is judged
    min_stop_agreement: float = 0.95  # shadow: stop reasons that must agree
    min_similarity: float = 0.6  # shadow: mean text similarity (0..1) to go on
    max_error_rate: float = 0.02  # an arm above this (its 95 % lower bound) holds
    latency_tolerance: float = 0.2  # secondary p95 may be this much slower (0.2: 20 %)
    confidence: float = 0.95  # of the intervals the arms are compared with
    canary_steps: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)  # percent, in order
    shadow_percent: float = 10.0  # the shadow a pass-through route goes to first
    quiet_days: int = 7  # a translated route with no calls this long: legacy off
    prices: dict[str, Price] = field(default_factory=lambda: dict(PRICES))
    prices_taken: str = PRICES_TAKEN

    def price(self, model: str | None) -> Price | None:
        """The price of `model`, or of the longest known name it starts with."""
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        known = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(known, key=len)] if known else None


class ReportTableError(ValueError):
    def __init__(self, message: str, at: tuple[str, ...]) -> None:
        super().__init__(message)
        self.at = at


_FRACTIONS = ("min_stop_agreement", "min_similarity", "max_error_rate", "latency_tolerance")
_COUNTS = ("min_requests", "min_comparisons", "quiet_days")


def parse_report(raw: Any) -> ReportConfig:
    """The `[report]` table (an empty one: the defaults)."""
    if not isinstance(raw, dict):
        raise ReportTableError("report: expected a [report] table", ("report",))
    config, changes = ReportConfig(), dict[str, Any]()
    known = [f.name for f in fields(ReportConfig) if f.name not in ("prices", "prices_taken")]
    for key, value in raw.items():
        at = ("report", key)
        if key == "prices":
            changes["prices"] = {**config.prices, **_prices(value)}
        elif key not in known:
            names = ", ".join([*known, "prices"])
            raise ReportTableError(f"report: unknown key {key!r} (known: {names})", at)
        else:
            changes[key] = _value(key, value, at)
    if "prices" in raw:
        changes["prices_taken"] = f"{PRICES_TAKEN}, with the config's [report.prices]"
    return replace(config, **changes)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value(key: str, value: Any, at: tuple[str, ...]) -> Any:
    if key in _COUNTS:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ReportTableError(f"report.{key}: expected a whole number >= 1, got {value!r}", at)
    if key in _FRACTIONS or key == "confidence":
        high = 0.999 if key == "confidence" else (10.0 if key == "latency_tolerance" else 1.0)
        if _number(value) and 0 <= value <= high and (key != "confidence" or value >= 0.5):
            return float(value)
        raise ReportTableError(
            f"report.{key}: expected a number from 0 to {high}, got {value!r}", at
        )
    if key == "shadow_percent":
        if _number(value) and 0 < value <= 100:
            return float(value)
        raise ReportTableError(f"report.{key}: expected a percent above 0, got {value!r}", at)
    steps = value if isinstance(value, list) else None
    if steps and all(_number(s) and 0 < s <= 100 for s in steps) and steps == sorted(set(steps)):
        return tuple(float(s) for s in steps)
    raise ReportTableError(
        f"report.{key}: expected rising percents, e.g. [10, 25, 50, 100], got {value!r}", at
    )


def _prices(raw: Any) -> dict[str, Price]:
    if not isinstance(raw, dict):
        raise ReportTableError("report.prices: expected [report.prices.MODEL] tables", ("report",))
    prices = {}
    for model, entry in raw.items():
        at = ("report", "prices", model)
        ok = isinstance(entry, dict) and set(entry) == {"input", "output"}
        if not ok or not all(_number(v) and v >= 0 for v in entry.values()):
            raise ReportTableError(
                f"report.prices.{model}: expected input = and output = (dollars per million "
                f"tokens), got {entry!r}",
                at,
            )
        prices[model] = Price(float(entry["input"]), float(entry["output"]))
    return prices
