"""What every endpoint shares: the config in force, the upstream clients, the metrics
and the shadow calls; and the canonical log line each request ends with."""

from typing import Any

import structlog
from starlette.datastructures import Headers

from proxy.errors import Unauthorized
from proxy.metrics import Metrics
from proxy.runtime import Runtime, UpstreamPool
from proxy.shadow import Shadows


class Bridge:
    """What every endpoint shares; built once by create_app. `runtime` (the config in
    force) is replaced whole on reload: each request keeps the one it started with."""

    def __init__(self, runtime: Runtime, pool: UpstreamPool, metrics: Metrics) -> None:
        self.runtime = runtime
        self.pool = pool
        self.metrics = metrics
        self.log = structlog.get_logger("complete-bridge")
        self.shadows = Shadows(self.record)
        metrics.expect(runtime.routes, runtime.settings.force_mode)

    def swap(self, runtime: Runtime) -> None:
        """Put a new config in force; the series of its routes exist (at 0) first."""
        self.metrics.expect(runtime.routes, runtime.settings.force_mode)
        self.runtime = runtime

    def record(self, event: str, facts: dict[str, Any]) -> None:
        """The canonical log line of `event`, and the metrics it feeds."""
        self.log.info(event, **facts)
        self.metrics.observe(event, facts)


def admit(runtime: Runtime, headers: Headers) -> None:
    if not runtime.access.admits(headers.raw):
        raise Unauthorized("invalid x-api-key")
