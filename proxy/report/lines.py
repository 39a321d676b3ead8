"""The log lines the report reads: which fields of which event it uses and which values
it can use (FIELDS), when a line happened, and `build_report`, which streams the lines
into a `Tally` and ranks it into a `Report`.

`build_report(lines)` streams: memory grows with the number of distinct callers, models,
routes, adaptation kinds and days, never with the number of lines. Durations and TTFB
quantiles are exact (nearest rank) while a route and arm has at most `EXACT_SAMPLES`
requests; past that they come from a fixed log-bucket histogram, within about 4.5 %
(quantiles.py).
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, get_args, get_type_hints

import orjson

from proxy.config.report_table import ReportConfig
from proxy.obs.record import RECORDS
from proxy.report.cockpit import decide
from proxy.report.rows import Report
from proxy.report.summary import rank
from proxy.report.tally import Tally


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp; one without a zone is UTC. ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


MAX_COUNT = 2**53  # tokens: the largest integer a JSON number holds exactly
MAX_MS = 366 * 24 * 3600 * 1000.0  # a year: no call lasts longer
MAX_RATIO = 1e9  # of two answers' lengths: no answer is a billion times another
Check = Callable[[object], bool]


def _is_int(value: object, low: float, high: float) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_ms(value: object) -> bool:
    """A duration: a number from 0 to MAX_MS (not NaN, not infinite)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return 0 <= value <= MAX_MS


def _is_texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check(name: str, hint: object) -> Check:
    """What a field's value must be for the report to use it, from its type in the
    record: a count or a status in its range, a duration, a flag, a text, texts."""
    if name in ("status", "upstream_status"):
        return lambda v: _is_int(v, 100, 599)
    if name.endswith("_ms"):
        return _is_ms
    kinds = {t for t in get_args(hint) if t is not type(None)} or {hint}
    if kinds == {bool}:
        return lambda v: isinstance(v, bool)
    if kinds == {int}:
        return lambda v: _is_int(v, 0, MAX_COUNT)
    if kinds == {float}:  # a similarity (0 to 1) or a length ratio
        high = 1.0 if name == "similarity" else MAX_RATIO
        return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= high
    if kinds == {list[str]}:
        return _is_texts
    return _is_str  # a text, or one of a closed set of texts


def _is_str(value: object) -> bool:
    return isinstance(value, str)


# What the report reads of each event: names of the record's fields (proxy/obs/record.py),
# checked as their types say. Null (or no such field) is "not known"; any other value of
# the wrong type or out of range makes the line unusable.
READS = {
    "complete": (
        "status", "error_type", "route", "client_disconnected", "caller", "legacy_model",
        "upstream_model", "arm", "mode", "stream", "input_tokens", "output_tokens",
        "duration_ms", "ttfb_ms", "adaptations",
    ),
    "shadow": (
        "status", "error_type", "route", "skipped", "exact_match", "normalised_match",
        "stop_match", "similarity", "length_ratio", "duration_ms",
    ),
}  # fmt: skip
FIELDS: dict[str, dict[str, Check]] = {
    event: {name: _check(name, get_type_hints(RECORDS[event])[name]) for name in names}
    for event, names in READS.items()
}


# The same checks, split for speed (a million lines): text fields checked inline.
_TEXTS = {
    event: [n for n, ok in checks.items() if ok is _is_str] for event, checks in FIELDS.items()
}
_OTHERS = {
    event: [(n, ok) for n, ok in checks.items() if ok is not _is_str]
    for event, checks in FIELDS.items()
}


def usable(line: dict[str, Any]) -> bool:
    """Whether every field the report reads of this event is null, absent, or a value
    it can use (see FIELDS)."""
    event = line["event"]
    if event not in FIELDS:
        return True
    get = line.get
    for name in _TEXTS[event]:
        value = get(name)
        if value is not None and type(value) is not str:
            return False
    for name, ok in _OTHERS[event]:
        value = get(name)
        if value is not None and not ok(value):
            return False
    return True


def build_report(
    lines: Iterable[str | bytes],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 50,
    config: ReportConfig | None = None,
) -> Report:
    """Aggregate log lines. Lines that are not a JSON object with an "event", or that
    hold a value the report cannot use (see FIELDS), are skipped and counted; with
    `since`/`until`, events outside [since, until) (or without a readable timestamp)
    are counted in `outside` and left out of everything else."""
    tally = Tally()
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
        elif line["event"] == "config.applied":
            tally.applied(line, moment)
    report = rank(tally, top)
    decide(tally, report, config or ReportConfig())
    return report
