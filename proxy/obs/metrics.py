"""Prometheus metrics, fed by the same facts as the canonical log lines.

`Metrics.observe(event, facts)` takes what the bridge logs for a request (or a shadow
comparison, or a config reload) and updates counters and histograms in its own
registry; `GET /metrics` renders them. Every label value comes from a closed set
(proxy/obs/metric_labels.py; unknown values become "other"; route names, which come from
config, are capped), so no client can grow the series count. A bad fact is skipped,
never raised: a metrics bug must not fail a request.
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import error_type_for_status
from proxy.obs.metric_labels import (
    ADAPTATIONS,
    ARMS,
    ERROR_TYPES,
    FORMATS,
    METHODS,
    MODES,
    OTHER,
    SHADOW_RESULTS,
    STATUS_CLASSES,
    STATUSES,
    adaptation_kinds,
    answering_arms,
    one_of,
    status_class_label,
    status_label,
    to_seconds,
    token_count,
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
        self._routes: set[str] = set()
        self._series: dict[tuple[object, tuple[str, ...]], Any] = {}
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
        self.passthrough = counter(
            "passthrough_requests", "Requests passed through unchanged",
            ["method", "status_class"],
        )  # fmt: skip
        self.shadow = counter(
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
                    self._at(self.shadow, label, result)
                for agree in ("true", "false"):
                    self._at(self.shadow_stops, label, agree)

    def observe(self, event: str, facts: Mapping[str, Any]) -> None:
        """Count one logged event; never raises."""
        try:
            if event == "complete":
                self._complete(facts)
            elif event == "passthrough":
                self._passthrough(facts)
            elif event == "shadow":
                self._shadow(facts)
            elif event in ("config.reloaded", "config.rejected"):
                result = "applied" if event == "config.reloaded" else "rejected"
                self._at(self.reloads, result).inc()
        except Exception as exc:  # a metrics bug must not fail the request it counts
            structlog.get_logger("complete-bridge").warning(
                "metrics.observe_failed", metrics_event=event, error=type(exc).__name__
            )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

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
                self._at(self.passthrough, method, status_class)
        self.expect(())  # calls no route matches, and calls refused before routing

    def _zero_arm(self, route: str, arm: str, mode: str) -> None:
        route = self._route(route)
        for fmt in sorted(FORMATS):
            for stream in ("false", "true"):
                for status in STATUSES:
                    self._at(self.requests, route, arm, mode, fmt, stream, status)
        for error_type in sorted(ERROR_TYPES):
            self._at(self.errors, route, arm, mode, error_type)
        for stream in ("false", "true"):
            self._at(self.duration, route, arm, mode, stream)
            self._at(self.ttfb, route, arm, mode, stream)
        for direction in ("input", "output"):
            self._at(self.tokens, route, arm, direction)
        if mode == "translate":  # a call passed on as it came is not adapted
            for kind in sorted(ADAPTATIONS):
                self._at(self.adaptations, route, arm, kind)
        self._at(self.disconnects, route, arm, mode)

    def _route(self, value: Any) -> str:
        if value is None:
            return "default"
        if not isinstance(value, str):
            return OTHER
        if value not in self._routes:
            if len(self._routes) >= MAX_ROUTES:
                return OTHER
            self._routes.add(value)
        return value

    def _complete(self, facts: Mapping[str, Any]) -> None:
        route = self._route(facts.get("route"))
        arm = one_of(facts.get("arm"), ARMS, "primary")
        mode = one_of(facts.get("mode"), MODES, "translate")
        stream = "true" if facts.get("stream") is True else "false"
        status = status_label(facts.get("status"))
        fmt = one_of(facts.get("format"), FORMATS, OTHER)
        self._at(self.requests, route, arm, mode, fmt, stream, status).inc()
        error_type = facts.get("error_type")
        if error_type is None and status.isdigit() and int(status) >= 400:
            error_type = error_type_for_status(int(status))  # a relayed upstream error
        if error_type is not None:
            kind = one_of(error_type, ERROR_TYPES, OTHER)
            self._at(self.errors, route, arm, mode, kind).inc()
        for histogram, key in ((self.duration, "duration_ms"), (self.ttfb, "ttfb_ms")):
            seconds = to_seconds(facts.get(key))
            if seconds is not None:
                self._at(histogram, route, arm, mode, stream).observe(seconds)
        for direction in ("input", "output"):
            tokens = token_count(facts.get(f"{direction}_tokens"))
            if tokens:
                self._at(self.tokens, route, arm, direction).inc(tokens)
        for kind in adaptation_kinds(facts.get("adaptations")):
            self._at(self.adaptations, route, arm, kind).inc()
        if facts.get("client_disconnected") is True:
            self._at(self.disconnects, route, arm, mode).inc()

    def _passthrough(self, facts: Mapping[str, Any]) -> None:
        method = one_of(facts.get("method"), METHODS, OTHER)
        status_class = status_class_label(facts.get("status"))
        self._at(self.passthrough, method, status_class).inc()

    def _shadow(self, facts: Mapping[str, Any]) -> None:
        """A comparison counts as skipped when the bridge had too many in flight, as failed
        when the secondary did not answer 200; stop agreement is counted for the others."""
        route = self._route(facts.get("route"))
        if facts.get("skipped") is True:
            result = "skipped"
        elif facts.get("status") != 200 or facts.get("error_type") is not None:
            result = "failed"
        elif facts.get("exact_match") is True:
            result = "exact"
        elif facts.get("normalised_match") is True:
            result = "normalised"
        else:
            result = "differs"
        self._at(self.shadow, route, result).inc()
        if result not in ("failed", "skipped"):
            agree = "true" if facts.get("stop_match") is True else "false"
            self._at(self.shadow_stops, route, agree).inc()
