"""The upstream's timeouts on one timer: `Silence` is a timeout over the waits of one task
(a first byte, each gap between body chunks), and `Clock` watches all the silences of
one upstream client at once.

Not asyncio.timeout, nor a timer per wait: a timer costs more to make and cancel (about
3 µs on uvloop) than the rest of a wait, and a fast call waits a few times. A wait is
entered into the clock's set and left; the clock's one timer is set for the earliest
deadline it has been told of, and when it fires it cancels the tasks whose waits have
lasted too long and is set again for the next deadline.
"""

import asyncio
import math
from typing import Protocol


class Due(Protocol):
    """What a clock watches: a deadline, and what happens at it."""

    @property
    def deadline(self) -> float: ...

    def expire(self) -> None: ...


class Clock:
    """The deadlines of the silences of one upstream client, or of any `Due` (bound to
    the running loop on first use, and again if a later use runs in another loop)."""

    __slots__ = ("_at", "_handle", "_loop", "_waits")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waits: set[Due] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the timer fires

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._waits, self._handle, self._at = loop, set(), None, math.inf
        return loop

    def watch(self, silence: Due, deadline: float) -> None:
        self._waits.add(silence)
        if deadline < self._at:
            self._arm(deadline)

    def forget(self, silence: Due) -> None:
        self._waits.discard(silence)

    def stop(self) -> None:
        """Cancel the timer (a clock of one silence, done with)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._at = None, math.inf

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._at, self._handle = when, self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self._handle, self._at = None, math.inf
        now, after = self._loop.time(), math.inf
        for silence in list(self._waits):
            if silence.deadline <= now:
                self._waits.discard(silence)
                silence.expire()
            else:
                after = min(after, silence.deadline)
        if after < math.inf:
            self._arm(after)


class Silence:
    """A timeout over the waits of the task that makes it: once a wait has lasted
    `seconds`, the task is cancelled, and `timed_out` then takes that cancel back. Time
    outside a wait does not count. Without a `clock`, it has one of its own."""

    __slots__ = (
        "_cancelling", "_clock", "_loop", "_own", "_seconds", "_task", "deadline", "expired"
    )  # fmt: skip

    def __init__(self, seconds: float, clock: Clock | None = None) -> None:
        self._own = clock is None
        self._clock = Clock() if clock is None else clock
        self._loop = self._clock.loop()
        task = asyncio.current_task(self._loop)  # given the loop: not looked up again
        assert task is not None
        self._task, self._seconds = task, seconds
        self.deadline, self._cancelling = 0.0, 0
        self.expired = False

    def wait(self) -> None:
        """A wait begins; `done` ends it."""
        self.deadline = self._loop.time() + self._seconds
        self._cancelling = self._task.cancelling()
        self._clock.watch(self, self.deadline)

    def done(self) -> None:
        """The wait is over (a clock of its own stops until the next)."""
        self._clock.forget(self)
        if self._own:
            self._clock.stop()

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def timed_out(self) -> bool:
        """On a CancelledError out of a wait: whether it was this timer's (taken back)."""
        return self.expired and self._task.uncancel() <= self._cancelling
