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
from typing import Any

import orjson

from proxy.report.rows import Report
from proxy.report.summary import rank
from proxy.report.tally import Tally


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp; one without a zone is UTC. ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    return rank(tally, top)
