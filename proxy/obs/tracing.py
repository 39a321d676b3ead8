"""OpenTelemetry traces, an optional extra (`pip install complete-bridge[otel]`), off
unless the standard OTEL_* variables configure it: OTEL_TRACES_EXPORTER (`otlp`, the
default, over HTTP/protobuf; or `console`), OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none
turn it off. The SDK reads the rest itself (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
the exporter's headers and timeouts).

Per call (proxy/edge/context.py): one server span, the child of the client's W3C
`traceparent` when it sent one, its attributes filled from the call's record when the
context emits it: the GenAI semantic conventions (gen_ai.*) and the bridge's own
(complete_bridge.*). Each upstream attempt is a client span (proxy/upstream/traced.py)
whose `traceparent` goes upstream. The call's `trace_id` is on its log lines. Off, or
not installed, a call costs one attribute check and one context variable read.
"""

import contextvars
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.types import Scope

# The span of the call running in this context, for the upstream layer.
CURRENT: contextvars.ContextVar["CallSpan | None"] = contextvars.ContextVar(
    "complete_bridge_call_span", default=None
)
GEN_AI_SYSTEM = "anthropic"


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if exporter == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporter or any(environ.get(name) for name in endpoints))


def start_tracing(environ: Mapping[str, str]) -> "Tracing | None":
    """Tracing as the environment configures it; None when off or not installed."""
    if not configured(environ):
        return None
    log = structlog.get_logger("complete-bridge")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    except ImportError:
        log.warning(
            "tracing.unavailable",
            hint="OTEL_* variables ask for traces; pip install 'complete-bridge[otel]'",
        )
        return None
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() or "otlp"
    if kind not in ("otlp", "console"):
        log.warning("tracing.unknown_exporter", exporter=kind, hint="otlp or console")
        return None
    exporter = OTLPSpanExporter() if kind == "otlp" else ConsoleSpanExporter()
    log.info("tracing.on", exporter=kind)
    resource = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return Tracing(exporter, named="OTEL_SERVICE_NAME" in environ or "service.name=" in resource)


class Tracing:
    """A tracer provider of the bridge's own (never the process-wide one), exporting in
    batches to `exporter` (`batch=False`: at each span's end, for tests)."""

    def __init__(self, exporter: Any, batch: bool = True, named: bool = False) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from proxy import __version__

        # The service's name: the environment's (OTEL_SERVICE_NAME, ...), else ours.
        resource = Resource.create({} if named else {"service.name": "complete-bridge"})
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        processor = BatchSpanProcessor if batch else SimpleSpanProcessor
        self.provider.add_span_processor(processor(exporter))
        self.tracer = self.provider.get_tracer("complete-bridge", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.server, self.client = SpanKind.SERVER, SpanKind.CLIENT

    def start(self, scope: Scope, headers: Headers, inbound: Any) -> "CallSpan":
        """The call's server span, begun, made the current one of this context, and its
        trace id bound to the call's log lines."""
        carrier = {name: headers[name] for name in ("traceparent", "tracestate") if name in headers}
        parent = self.propagator.extract(carrier) if carrier else None
        method, path = scope.get("method", ""), scope.get("path", "")
        span = self.tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=self.server,
            attributes={"http.request.method": method, "url.path": path},
        )
        call = CallSpan(self, span)
        call.token = CURRENT.set(call)
        inbound.bind(trace_id=call.trace_id)
        return call

    def shutdown(self) -> None:
        """Export what is left, then stop (at the app's end)."""
        self.provider.shutdown()


class CallSpan:
    """One call's server span."""

    __slots__ = ("span", "token", "trace_id", "tracing")

    def __init__(self, tracing: Tracing, span: Any) -> None:
        self.tracing, self.span = tracing, span
        self.trace_id = format(span.get_span_context().trace_id, "032x")
        self.token: contextvars.Token[CallSpan | None] | None = None

    def finish(self, record: Any) -> None:
        """Fill the span from the call's record (as it is emitted) and end it."""
        from opentelemetry.trace import StatusCode

        span = self.span
        model = getattr(record, "legacy_model", None)
        if hasattr(record, "legacy_model"):  # a completion (else another path passed on)
            span.update_name(f"text_completion {model}" if model else "text_completion")
            span.set_attributes(_gen_ai(record))
        if record.status is not None:
            span.set_attribute("http.response.status_code", record.status)
        if record.error_type is not None:
            span.set_attribute("error.type", record.error_type)
            if record.status is None or record.status >= 500:
                span.set_status(StatusCode.ERROR, record.error_type)
        span.end()
        if self.token is not None:
            CURRENT.reset(self.token)
            self.token = None


def _gen_ai(record: Any) -> dict[str, Any]:
    """The GenAI semantic conventions' attributes, and the bridge's, of a completion."""
    reason = record.upstream_stop_reason  # the model's
    values = {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.system": GEN_AI_SYSTEM,
        "gen_ai.request.model": record.legacy_model,
        "gen_ai.response.model": record.upstream_model,
        "gen_ai.usage.input_tokens": record.input_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "gen_ai.response.finish_reasons": [reason] if reason else None,
        "complete_bridge.route": record.route,
        "complete_bridge.arm": record.arm,
        "complete_bridge.mode": record.mode,
        "complete_bridge.legacy_model": record.legacy_model,
        "complete_bridge.adaptations": list(record.adaptations or ()),
        "complete_bridge.stream": record.stream,
        "complete_bridge.stop_reason": record.stop_reason,  # the legacy one the client got
    }
    return {key: value for key, value in values.items() if value is not None}
