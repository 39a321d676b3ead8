"""OpenTelemetry traces: the bridge in process with the SDK's in-memory exporter (one
server span per call, the GenAI attributes and the bridge's from its record, a client
span per upstream attempt whose traceparent reaches the upstream, the client's
traceparent as the parent); a real bridge process exporting OTLP/HTTP to a receiver on
loopback, its log lines carrying the trace id; off without OTEL_* (no span, no trace id,
the client's traceparent not relayed, as before), and a warning, not a failure, when the
extra is not installed."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.obs.tracing import Tracing, configured
from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, free_port, request_body, serving
from tests.fakes.upstream import FakeUpstream

V2 = {"x-api-key": "sk-ant-test-tracing", "anthropic-version": "2023-06-01"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


async def test_one_server_span_per_call_with_gen_ai_attributes_and_a_client_span() -> None:
    upstream, exporter = FakeUpstream(), InMemorySpanExporter()
    async with serving(upstream) as upstream_url:
        app = create_app(Settings(upstream_url=upstream_url))
        app.state.bridge.tracing = Tracing(exporter, batch=False)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            headers = {**V2, "traceparent": TRACEPARENT}
            body = legacy_body(max_tokens_to_sample=200_000)  # an adaptation: capped
            response = await client.post("/v1/complete", json=body, headers=headers)
            assert response.status_code == 200, response.text
            unsampled = await client.post("/v1/complete", content=b"{no", headers=V2)
            assert unsampled.status_code == 400
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    (client_span,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(servers) == 2
    server, refused = servers
    # The client's traceparent is the server span's parent; the client span its child.
    assert format(server.context.trace_id, "032x") == TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT
    assert client_span.parent is not None
    assert client_span.parent.span_id == server.context.span_id
    assert client_span.context.trace_id == server.context.trace_id
    # What went upstream: our client span's traceparent, not the client's.
    sent = upstream.requests[0].headers["traceparent"]
    assert sent == f"00-{TRACE}-{format(client_span.context.span_id, '016x')}-01"
    attributes: dict[str, Any] = dict(server.attributes or {})
    answer = response.json()
    assert server.name == "text_completion claude-2.1"
    assert attributes["gen_ai.system"] == "anthropic"
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.request.model"] == "claude-2.1"
    assert attributes["gen_ai.response.model"] == upstream.requests[0].body["model"]
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["complete_bridge.stop_reason"] == answer["stop_reason"]
    assert attributes["complete_bridge.route"] == "default"
    assert attributes["complete_bridge.arm"] == "primary"
    assert attributes["complete_bridge.mode"] == "translate"
    assert attributes["complete_bridge.legacy_model"] == "claude-2.1"
    adaptations = attributes["complete_bridge.adaptations"]
    assert isinstance(adaptations, tuple) and adaptations[0].startswith("capped_max_tokens")
    assert attributes["http.response.status_code"] == 200
    client_attributes = dict(client_span.attributes or {})
    assert client_attributes["http.request.method"] == "POST"
    assert client_attributes["http.response.status_code"] == 200
    assert client_attributes["url.full"] == upstream_url + "/v1/messages"
    refused_attributes = dict(refused.attributes or {})
    assert refused_attributes["http.response.status_code"] == 400
    assert refused_attributes["error.type"] == "invalid_request_error"
    assert refused.parent is None  # no traceparent: a trace of its own


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every ExportTraceServiceRequest posted."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.received = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        assert scope["path"] == "/v1/traces"
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.exports.append(export)
        self.received.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) of every span received."""
        found = []
        for export in self.exports:
            for resource_spans in export.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind)


async def test_a_bridge_process_exports_otlp_http_and_logs_the_trace_id(tmp_path: Path) -> None:
    receiver = Receiver()
    async with serving(receiver) as receiver_url, serving(FakeUpstream()) as upstream_url:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url,
            "OTEL_SERVICE_NAME": "bridge-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        async with (
            bridge_process(upstream_url, tmp_path / "bridge.log", env) as bridge,
            httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
        ):
            headers = {**V2, "traceparent": TRACEPARENT}
            response = await client.post("/v1/complete", json=legacy_body(), headers=headers)
            assert response.status_code == 200
            (line,) = await bridge.wait_for("complete")
            async with asyncio.timeout(10):
                while len(receiver.spans()) < 2:
                    await receiver.received.wait()
                    receiver.received.clear()
            assert bridge.events("tracing.on")[0]["exporter"] == "otlp"
    assert line["trace_id"] == TRACE
    by_kind = {span.kind: (resource, span) for resource, span in receiver.spans()}
    resource, server = by_kind[2]  # SPAN_KIND_SERVER
    _, client_span = by_kind[3]  # SPAN_KIND_CLIENT
    assert resource["service.name"] == "bridge-under-test"
    assert server.trace_id.hex() == TRACE and server.parent_span_id.hex() == PARENT
    assert client_span.parent_span_id == server.span_id
    attributes = {a.key: _value(a.value) for a in server.attributes}
    assert attributes["gen_ai.request.model"] == "claude-2.1"
    assert attributes["gen_ai.usage.output_tokens"] == line["output_tokens"]
    assert attributes["gen_ai.usage.input_tokens"] == line["input_tokens"]
    assert attributes["complete_bridge.route"] == line["route"]


async def test_off_without_otel_variables_no_span_no_trace_id_nothing_relayed(
    tmp_path: Path,
) -> None:
    assert not configured({"OTEL_SERVICE_NAME": "x"})
    assert not configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
    assert not configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    upstream = FakeUpstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log") as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
    ):
        headers = {**V2, "traceparent": TRACEPARENT}
        assert (await client.post("/v1/complete", json=legacy_body(), headers=headers)).is_success
        (line,) = await bridge.wait_for("complete")
        assert not bridge.events("tracing.on")
    assert "trace_id" not in line
    assert "traceparent" not in upstream.requests[0].headers  # as before tracing: not relayed


def test_configured_but_not_installed_is_a_warning_and_calls_are_served(tmp_path: Path) -> None:
    """The extra missing (its import blocked): one tracing.unavailable line; the bridge
    serves as without tracing."""
    port = free_port()
    blocked = "import sys; sys.modules['opentelemetry'] = None; from proxy.cli import main; main()"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OTEL_"))}
    environ.update(BRIDGE_LOG_FORMAT="json", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    command = [sys.executable, "-c", blocked, "serve", "--upstream-url", "demo:"]
    log = tmp_path / "bridge.log"
    with log.open("w") as out:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=out, env=environ)
    try:
        response = _first_answer(process, f"http://127.0.0.1:{port}/v1/complete")
        assert response.status_code == 200
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    assert '"event":"tracing.unavailable"' in text and "complete-bridge[otel]" in text
    assert '"trace_id"' not in text


def _first_answer(process: "subprocess.Popen[bytes]", url: str) -> httpx.Response:
    """The answer to one call, once the process listens (within 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, "the bridge exited"
        try:
            return httpx.post(url, json=legacy_body(), headers=V2, timeout=30)
        except httpx.ConnectError:
            assert time.monotonic() < deadline, "the bridge never listened"
            time.sleep(0.05)


async def test_a_malformed_traceparent_starts_a_trace_of_its_own() -> None:
    upstream, exporter = FakeUpstream(), InMemorySpanExporter()
    async with serving(upstream) as upstream_url:
        app = create_app(Settings(upstream_url=upstream_url))
        app.state.bridge.tracing = Tracing(exporter, batch=False)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            headers = {**V2, "traceparent": "00-not-a-trace-01", "tracestate": "x=1"}
            response = await client.post("/v1/complete", json=legacy_body(), headers=headers)
    assert response.status_code == 200
    server = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert server.parent is None and format(server.context.trace_id, "032x") != TRACE
    sent = upstream.requests[0].headers["traceparent"]
    assert sent.split("-")[1] == format(server.context.trace_id, "032x")
