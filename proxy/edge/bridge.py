"""What every endpoint shares: the config in force, the upstream clients, the metrics,
the shadow calls and the budget of request bodies in flight; and the canonical log line
each request ends with."""

import asyncio
import contextlib
from typing import Any

import structlog
from starlette.datastructures import Headers

from proxy.edge.inflight import InflightBytes
from proxy.errors import Unauthorized
from proxy.obs.metrics import Metrics
from proxy.rollout.runtime import Runtime, UpstreamPool
from proxy.rollout.shadow import Shadows


class Bridge:
    """What every endpoint shares; built once by create_app. `runtime` (the config in
    force) is replaced whole on reload: each request keeps the one it started with."""

    def __init__(self, runtime: Runtime, pool: UpstreamPool, metrics: Metrics) -> None:
        self.runtime = runtime
        self.pool = pool
        self.metrics = metrics
        self.log = structlog.get_logger("complete-bridge")
        self.shadows = Shadows(self.record)
        self.inflight = InflightBytes()  # request bodies held: max_inflight_bytes
        self.calls = 0  # requests in flight, on whichever config
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        metrics.expect(runtime.routes, runtime.settings.force_mode)

    def swap(self, runtime: Runtime) -> None:
        """Put a new config in force; the series of its routes exist (at 0) first."""
        self.metrics.expect(runtime.routes, runtime.settings.force_mode)
        self.runtime = runtime

    def call_started(self) -> None:
        self.calls += 1
        self._no_calls.clear()

    def call_ended(self) -> None:
        self.calls -= 1
        if not self.calls:
            self._no_calls.set()

    async def calls_end(self, within: float) -> None:
        """Wait (up to `within` seconds) for the requests in flight to end. At shutdown
        the calls cut at the drain deadline are still writing their answers (a 503, a
        stream's error event) and their log lines when the app is told to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._no_calls.wait()

    def record(self, event: str, facts: dict[str, Any]) -> None:
        """The canonical log line of `event`, and the metrics it feeds."""
        self.log.info(event, **facts)
        self.metrics.observe(event, facts)


def admit(runtime: Runtime, headers: Headers) -> None:
    if not runtime.access.admits(headers.raw):
        raise Unauthorized("invalid x-api-key")
