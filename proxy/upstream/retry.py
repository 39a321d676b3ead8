"""When the bridge may retry an upstream call, and how long it waits first. Pure: the
caller owns the clock, the randomness and the sending.

Only what failed before any byte reached the client is retried: a connection that
could not be made (or dropped before the response began), and 503/529 (overloaded).
A budget bounds retries to a share of recent requests, so an upstream in trouble
gets at most that much extra load from us, never a retry storm.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

RETRY_STATUSES = frozenset({503, 529})
BACKOFF_BASE = 0.5  # seconds before the first retry, at most (full jitter)
BACKOFF_CAP = 8.0


@dataclass(slots=True)
class RetryBudget:
    """A token bucket: each request adds `ratio` of a retry, each retry spends one;
    `burst` retries may be spent at once (and the bucket starts full)."""

    ratio: float
    burst: float = 10.0
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def deposit(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def backoff(attempt: int, rand: float) -> float:
    """Seconds to wait before retry number `attempt` (from 0), given `rand` in [0, 1)."""
    return rand * min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The upstream's wish in seconds (`retry-after-ms`, then `retry-after` in seconds),
    or None when it states none we can read."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
        if 0 <= seconds < float("inf"):
            return seconds
    return None


def should_retry_status(status: int, headers: Mapping[str, str]) -> bool:
    """503/529, unless the upstream said `x-should-retry: false`."""
    return status in RETRY_STATUSES and headers.get("x-should-retry") != "false"
