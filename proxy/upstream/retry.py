"""When the bridge may retry an upstream call, and how long it waits first (pure: the
caller owns the clock, the randomness and the sending), and the retry layer over a
transport that applies it.

Only what failed before any byte reached the client is retried: a connection that
could not be made (or dropped before the response began), and 503/529 (overloaded).
A budget bounds retries to a share of recent requests, so an upstream in trouble
gets at most that much extra load from us, never a retry storm.
"""

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from proxy.config.settings import Settings
from proxy.errors import BridgeError, UpstreamUnreachable
from proxy.upstream.answer import Answer, closing
from proxy.upstream.transport import Request, Transport

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


class Retrying:
    """A Transport layer: the inner one's attempt, sent again after an UpstreamUnreachable
    or a 503/529, up to `retries` times, while the budget allows (each request deposits)
    and the wait is at most `max_wait`. Only a body held in memory is sent again; a
    streamed one is sent once. Each retry is logged as `upstream.retry`."""

    def __init__(self, inner: Transport, settings: Settings) -> None:
        self.inner = inner
        self._retries = settings.retries
        self._max_wait = settings.retry_max_wait
        self._budget = RetryBudget(settings.retry_budget)
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)
        self._log = structlog.get_logger("complete-bridge")

    def open(self) -> None:
        self.inner.open()

    async def send(self, request: Request) -> Answer:
        self._budget.deposit()
        attempt = 0
        while True:
            failure: BridgeError | None = None
            try:
                answer = await self.inner.send(request)
            except UpstreamUnreachable as exc:
                failure, delay = exc, self._delay(attempt, request.content, None)
                if delay is None:
                    raise
            else:
                if not should_retry_status(answer.status_code, answer.headers):
                    return answer
                delay = self._delay(attempt, request.content, answer.headers)
                if delay is None:
                    return answer
                await closing(answer)
            self._log.warning(
                "upstream.retry",
                attempt=attempt + 1,
                after_status=None if failure else answer.status_code,
                after_error=failure.message if failure else None,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _delay(
        self, attempt: int, content: object, headers: Mapping[str, str] | None
    ) -> float | None:
        """Seconds to wait before retrying, or None: no retry."""
        if attempt >= self._retries or not isinstance(content, bytes):
            return None
        wish = None if headers is None else retry_after(headers)
        delay = backoff(attempt, self._random.random()) if wish is None else wish
        if delay > self._max_wait or not self._budget.withdraw():
            return None
        return delay

    async def aclose(self) -> None:
        await self.inner.aclose()
