"""Shadow calls: a sample of a route's calls also goes to its secondary arm, in the
background once the primary has answered, and the two answers are compared in a
`shadow` log line. A shadow never delays or fails the client's call: it starts after
the answer is out, at most `MAX_SHADOWS` run at once (more are skipped, and counted),
and its failures are logged, not raised.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from proxy.errors import BridgeError, error_type_for_status
from proxy.obs.record import ShadowRecord
from proxy.rollout.runtime import Runtime
from proxy.rollout.shadow import Reply

MAX_SHADOWS = 64
SIMILARITY_CHARS = 8000  # of each answer, compared: bounds the CPU of one comparison


def compare(primary: Reply, secondary: Reply, record: ShadowRecord) -> None:
    """How two answers agree, into `record`: stop reason, exact text, text with whitespace
    and case normalised, their lengths, a similarity and a length ratio."""
    (a, a_stop), (b, b_stop) = primary, secondary
    record.stop_match = a_stop == b_stop
    record.exact_match = a == b
    record.normalised_match = _normalised(a) == _normalised(b)
    record.primary_stop_reason, record.secondary_stop_reason = a_stop, b_stop
    record.primary_chars, record.secondary_chars = len(a), len(b)
    record.similarity = similarity(a, b)
    record.length_ratio = round(len(b) / len(a), 4) if a else (1.0 if not b else None)


def similarity(a: str, b: str) -> float:
    """Token-set Jaccard of two answers' first SIMILARITY_CHARS characters, words case
    folded: 1.0 same words, 0.0 none shared (two empty answers: 1.0). Linear in the
    capped length: cheap enough for the background, bounded whatever the answers."""
    words_a = set(a[:SIMILARITY_CHARS].casefold().split())
    words_b = set(b[:SIMILARITY_CHARS].casefold().split())
    union = words_a | words_b
    return round(len(words_a & words_b) / len(union), 4) if union else 1.0


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class ShadowCall:
    """A call to ask the secondary arm again, and the primary's answer to compare."""

    runtime: Runtime  # the generation it runs on (counted as active there)
    ask: Callable[[], Awaitable[tuple[int, Reply | None]]]  # the secondary arm's `ask`
    primary: Reply
    record: ShadowRecord  # what its line says


class Shadows:
    """The shadow calls in flight; cancelled at shutdown."""

    def __init__(self, emit: Callable[[ShadowRecord], None]) -> None:
        self._emit = emit
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, call: ShadowCall) -> None:
        if len(self._tasks) >= MAX_SHADOWS:
            call.record.skipped = True
            self._emit(call.record)
            return
        call.runtime.active += 1  # now, not when the task first runs: a sweep may come first
        task = asyncio.get_running_loop().create_task(self._run(call), name="shadow call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, call: ShadowCall) -> None:
        started = time.perf_counter()
        record = call.record
        try:
            record.status, answer = await call.ask()
            if answer is None:
                record.error_type = error_type_for_status(record.status)
            else:
                compare(call.primary, answer, record)
        except BridgeError as exc:
            record.status, record.error_type = exc.status, exc.error_type
        except Exception:  # a shadow's bug is logged, never the client's problem
            structlog.get_logger("complete-bridge").exception("shadow.internal_error")
            record.error_type = "api_error"
        finally:
            call.runtime.active -= 1
        record.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        self._emit(record)

    @property
    def pending(self) -> frozenset[asyncio.Task[None]]:
        return frozenset(self._tasks)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
