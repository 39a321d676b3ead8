"""What every endpoint shares: the config in force, the upstream clients, the metrics,
the calls and shadow calls in flight and the budget of request bodies in flight; and
`emit`, where every record becomes its log line and its metrics."""

import structlog
from starlette.datastructures import Headers

from proxy.config.settings import Settings
from proxy.edge.arms import Arm
from proxy.edge.context import Calls
from proxy.edge.inflight import InflightBytes
from proxy.edge.passthrough_arm import PassthroughArm
from proxy.edge.shadows import Shadows
from proxy.edge.translate_arm import TranslateArm
from proxy.errors import Unauthorized
from proxy.obs.log import RecordSink
from proxy.obs.metrics import Metrics
from proxy.obs.record import Record
from proxy.obs.tracing import Tracing
from proxy.rollout.runtime import Runtime, Target, UpstreamPool


class Bridge:
    """What every endpoint shares; built once by create_app. `runtime` (the config in
    force) is replaced whole on reload: each call keeps the one it started with."""

    def __init__(self, runtime: Runtime, pool: UpstreamPool, metrics: Metrics) -> None:
        self.runtime = runtime
        self.pool = pool
        self.metrics = metrics
        self.log = structlog.get_logger("complete-bridge")
        self.shadows = Shadows(self.emit)
        self.inflight = InflightBytes()  # request bodies held: max_inflight_bytes
        self.calls = Calls()
        self.tracing: Tracing | None = None  # OTEL_* set: create_app's (proxy/obs/tracing.py)
        # How records become lines: the serving process's JSON log writes them itself
        # (proxy/obs/log.py, set by `serve`); else through structlog, as every line.
        self.write_record: RecordSink | None = None
        metrics.expect(runtime.routes, runtime.settings.force_mode)

    def swap(self, runtime: Runtime) -> None:
        """Put a new config in force; the series of its routes exist (at 0) first."""
        self.metrics.expect(runtime.routes, runtime.settings.force_mode)
        self.runtime = runtime

    def emit(self, record: Record) -> None:
        """The record's canonical log line, and the metrics it feeds (a metrics bug is
        logged, never the call's failure)."""
        if self.write_record is not None:
            self.write_record(record.EVENT, record.line())
        else:
            self.log.info(record.EVENT, **record.line())
        try:
            record.count(self.metrics)
        except Exception as exc:
            self.log.warning("metrics.observe_failed", metrics_event=record.EVENT, error=repr(exc))


def arm(target: Target, settings: Settings) -> Arm:
    """The arm that answers as `target` says."""
    if target.mode == "translate":
        return TranslateArm(target, settings)
    return PassthroughArm(target, settings)


def admit(runtime: Runtime, headers: Headers) -> None:
    if not runtime.access.admits(headers.raw):
        raise Unauthorized("invalid x-api-key")
