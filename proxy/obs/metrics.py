"""Prometheus metrics, fed by the records the canonical log lines are made of.

`Metrics.complete`, `.passthrough` and `.shadow` count one record (proxy/obs/record.py);
`GET /metrics` renders the registry (one per app). Every label value comes from a closed
set (the record's typed fields; proxy/obs/metric_labels.py; unknown methods and adaptation
kinds become "other"; route names, which come from config, are capped), so no client can
grow the series count.
"""

from collections.abc import Iterable
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import ERROR_TYPE_NAMES
from proxy.obs.metric_labels import (
    METHODS,
    OTHER,
    SHADOW_RESULTS,
    STATUS_CLASSES,
    STATUSES,
    answering_arms,
    status_class_label,
    status_label,
)
from proxy.obs.multiprocess import scraped
from proxy.obs.record import (
    ADAPTATION_KINDS,
    FORMATS,
    CompleteRecord,
    PassthroughRecord,
    ShadowRecord,
    adaptation_kind,
)
from proxy.rollout.routes import Route

PREFIX = "complete_bridge_"
MAX_ROUTES = 100
# From a fast local answer to a long generation; the upstream's first byte may take minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
Series = TypeVar("Series", Counter, Histogram)


class Metrics:
    """The bridge's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scraped = scraped(self.registry)  # with workers: theirs summed (multiprocess.py)
        self._routes: set[str] = set()
        self._series: dict[tuple[object, tuple[str, ...]], Any] = {}
        # A call's series by its labels' values: one lookup a call, not one a series.
        self._bundles: dict[tuple[object, ...], tuple[Any, ...]] = {}
        by_arm = ["route", "arm"]

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=self.registry)

        def histogram(name: str, doc: str) -> Histogram:
            labels = [*by_arm, "mode", "stream"]
            return Histogram(PREFIX + name, doc, labels, registry=self.registry, buckets=BUCKETS)

        self.requests = counter(
            "requests", "POST /v1/complete requests answered (status none: client left first)",
            [*by_arm, "mode", "format", "stream", "status"],
        )  # fmt: skip
        self.errors = counter(
            "errors", "POST /v1/complete requests that failed, by error type",
            [*by_arm, "mode", "error_type"],
        )  # fmt: skip
        self.duration = histogram("request_duration_seconds", "POST /v1/complete, start to end")
        self.ttfb = histogram("time_to_first_byte_seconds", "POST /v1/complete, to first byte")
        self.tokens = counter("tokens", "Tokens the upstream reported", [*by_arm, "direction"])
        self.adaptations = counter(
            "adaptations", "Request adaptations made, by kind", [*by_arm, "kind"]
        )
        self.disconnects = counter(
            "client_disconnects", "Clients that hung up before the end", [*by_arm, "mode"]
        )
        self.passthrough_requests = counter(
            "passthrough_requests", "Requests passed through unchanged",
            ["method", "status_class"],
        )  # fmt: skip
        self.shadow_comparisons = counter(
            "shadow_comparisons", "Shadow comparisons of two arms, by result", ["route", "result"]
        )
        self.shadow_stops = counter(
            "shadow_stop_agreement", "Shadow comparisons whose stop reasons agree or not",
            ["route", "agree"],
        )  # fmt: skip
        self.reloads = counter("config_reloads", "Config reloads, by result", ["result"])
        self._zero_global()

    def expect(self, routes: Iterable[Route], force_mode: str = "") -> None:
        """Create at 0 the series of every (route, arm, mode) a call can be counted under
        with this config (at start and on each reload, before it serves)."""
        routes = tuple(routes)
        for name, arm, mode in answering_arms(routes, force_mode):
            self._zero_arm(name, arm, mode)
        for route in routes:
            if route.mode == "shadow":
                label = self._route(route.name)
                for result in SHADOW_RESULTS:
                    self._at(self.shadow_comparisons, label, result)
                for agree in ("true", "false"):
                    self._at(self.shadow_stops, label, agree)

    def reloaded(self, applied: bool) -> None:
        self._at(self.reloads, "applied" if applied else "rejected").inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.scraped), CONTENT_TYPE_LATEST

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`."""
        body, content_type = self.render()
        return Response(body, headers={"content-type": content_type})

    def _at(self, metric: Series, *labels: str) -> Series:
        """`metric.labels(*labels)`, remembered: labels() costs more than the count."""
        key = (metric, labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = metric.labels(*labels)
        return series

    def _zero_global(self) -> None:
        for result in ("applied", "rejected"):
            self._at(self.reloads, result)
        for method in sorted(METHODS):
            for status_class in STATUS_CLASSES:
                self._at(self.passthrough_requests, method, status_class)
        self.expect(())  # calls no route matches, and calls refused before routing

    def _zero_arm(self, route: str, arm: str, mode: str) -> None:
        route = self._route(route)
        for fmt in sorted(FORMATS):
            for stream in ("false", "true"):
                for status in STATUSES:
                    self._at(self.requests, route, arm, mode, fmt, stream, status)
        for error_type in sorted(ERROR_TYPE_NAMES):
            self._at(self.errors, route, arm, mode, error_type)
        for stream in ("false", "true"):
            self._at(self.duration, route, arm, mode, stream)
            self._at(self.ttfb, route, arm, mode, stream)
        for direction in ("input", "output"):
            self._at(self.tokens, route, arm, direction)
        if mode == "translate":  # a call passed on as it came is not adapted
            for kind in sorted(ADAPTATION_KINDS):
                self._at(self.adaptations, route, arm, kind)
        self._at(self.disconnects, route, arm, mode)

    def _route(self, value: str) -> str:
        """A route's label: its name, until MAX_ROUTES names are in use."""
        if value not in self._routes:
            if len(self._routes) >= MAX_ROUTES:
                return OTHER
            self._routes.add(value)
        return value

    def complete(self, record: CompleteRecord) -> None:
        """Count one `POST /v1/complete` call."""
        route = self._route(record.route)
        arm = record.arm or "primary"
        key = (route, arm, record.mode, record.format, record.stream, record.status)
        bundle = self._bundles.get(key)
        if bundle is None:
            bundle = self._bundles[key] = self._bundle(*key)
        requests, duration, ttfb, input_tokens, output_tokens, disconnects = bundle
        requests.inc()
        if record.error_type is not None:
            mode = record.mode or "translate"
            self._at(self.errors, route, arm, mode, record.error_type).inc()
        if record.duration_ms is not None:
            duration.observe(record.duration_ms / 1000)
        if record.ttfb_ms is not None:
            ttfb.observe(record.ttfb_ms / 1000)
        if record.input_tokens:
            input_tokens.inc(record.input_tokens)
        if record.output_tokens:
            output_tokens.inc(record.output_tokens)
        for adaptation in record.adaptations or ():
            kind = adaptation_kind(adaptation)
            kind = kind if kind in ADAPTATION_KINDS else OTHER
            self._at(self.adaptations, route, arm, kind).inc()
        if record.client_disconnected:
            disconnects.inc()

    def _bundle(
        self,
        route: str,
        arm: str,
        mode: str | None,
        fmt: str,
        stream: bool | None,
        status: int | None,
    ) -> tuple[Any, ...]:
        """The series a call of these labels counts in (looked up once per label set)."""
        mode = mode or "translate"
        streamed = "true" if stream else "false"
        return (
            self._at(self.requests, route, arm, mode, fmt, streamed, status_label(status)),
            self._at(self.duration, route, arm, mode, streamed),
            self._at(self.ttfb, route, arm, mode, streamed),
            self._at(self.tokens, route, arm, "input"),
            self._at(self.tokens, route, arm, "output"),
            self._at(self.disconnects, route, arm, mode),
        )

    def passthrough(self, record: PassthroughRecord) -> None:
        """Count one call of another path."""
        method = record.method if record.method in METHODS else OTHER
        self._at(self.passthrough_requests, method, status_class_label(record.status)).inc()

    def shadow(self, record: ShadowRecord) -> None:
        """A comparison counts as skipped when the bridge had too many in flight, as failed
        when the secondary did not answer 200; stop agreement is counted for the others."""
        route = self._route(record.route)
        if record.skipped:
            result = "skipped"
        elif record.status != 200 or record.error_type is not None:
            result = "failed"
        elif record.exact_match:
            result = "exact"
        elif record.normalised_match:
            result = "normalised"
        else:
            result = "differs"
        self._at(self.shadow_comparisons, route, result).inc()
        if result not in ("failed", "skipped"):
            agree = "true" if record.stop_match else "false"
            self._at(self.shadow_stops, route, agree).inc()
