"""Prometheus metrics: what each logged event counts, bounded labels, and /metrics served
by the app in-process and by a real bridge process."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from proxy.config.settings import Settings, check_value
from proxy.edge.app import create_app
from proxy.errors import ErrorType
from proxy.obs.metrics import MAX_ROUTES, Metrics
from proxy.obs.record import CompleteRecord, PassthroughRecord, ShadowRecord
from proxy.rollout.route_tables import parse_routes
from tests.fakes.factories import CANARY_ROUTE, legacy_body, message
from tests.fakes.loopback import loopback, running
from tests.fakes.servers import bridge_process, serving
from tests.fakes.sse import event as sse_event
from tests.fakes.upstream import FakeUpstream

V2 = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of an exposition text, keyed by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of every series of `name`."""
    return sum(v for (sample, _), v in samples.items() if sample == name)


def rendered(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    return scrape(body.decode())


ROUTE = {"route": "default", "arm": "primary"}
TIMED = {**ROUTE, "mode": "translate", "stream": "false"}


def shadow_record(**fields: Any) -> ShadowRecord:
    base: dict[str, Any] = {
        "route": "main", "caller": None, "legacy_model": None, "format": "v2",
        "stream": False, "primary_mode": "translate", "secondary_mode": "translate",
    }  # fmt: skip
    return ShadowRecord(**{**base, **fields})


def test_a_complete_record_feeds_every_request_metric() -> None:
    """One complete record counts the request, its tokens, adaptations and both timings."""
    metrics = Metrics()
    metrics.complete(
        CompleteRecord(
            format="v2",
            route="default",
            stream=False,
            status=200,
            input_tokens=12,
            output_tokens=5,
            adaptations=["dropped_field:tags", "capped_max_tokens:100000->64000", "local_stop"],
            ttfb_ms=30.0,
            duration_ms=1500.0,
            legacy_model="claude-2.1",
        )
    )
    s = rendered(metrics)
    requests = {**ROUTE, "mode": "translate", "format": "v2", "stream": "false", "status": "200"}
    assert value(s, "complete_bridge_requests_total", **requests) == 1
    assert value(s, "complete_bridge_tokens_total", **ROUTE, direction="input") == 12
    assert value(s, "complete_bridge_tokens_total", **ROUTE, direction="output") == 5
    for kind in ("dropped_field", "capped_max_tokens", "local_stop"):
        assert value(s, "complete_bridge_adaptations_total", **ROUTE, kind=kind) == 1
    duration = "complete_bridge_request_duration_seconds"
    assert value(s, duration + "_count", **TIMED) == 1
    assert value(s, duration + "_sum", **TIMED) == 1.5
    assert value(s, duration + "_bucket", **TIMED, le="1.0") == 0
    assert value(s, duration + "_bucket", **TIMED, le="2.5") == 1
    ttfb = "complete_bridge_time_to_first_byte_seconds"
    assert value(s, ttfb + "_bucket", **TIMED, le="0.025") == 0
    assert value(s, ttfb + "_bucket", **TIMED, le="0.05") == 1
    assert value(s, ttfb + "_bucket", **TIMED, le="120.0") == 1
    assert total(s, "complete_bridge_errors_total") == 0
    assert not any("claude" in v for _, labels in s for _, v in labels), "model as a label"


def test_errors_are_counted_by_their_error_type() -> None:
    """Each failed call is counted under its record's error type (a relayed upstream
    error has one: its status's); a call without one is not an error."""
    metrics = Metrics()
    cases: list[tuple[ErrorType | None, int]] = [
        ("overloaded_error", 529),
        ("overloaded_error", 529),
        ("api_error", 418),
        ("invalid_request_error", 400),
        (None, 200),
    ]
    for error_type, status in cases:
        metrics.complete(
            CompleteRecord(format="v2", route="default", status=status, error_type=error_type)
        )
    s = rendered(metrics)
    errors = {**ROUTE, "mode": "translate"}
    assert value(s, "complete_bridge_errors_total", **errors, error_type="overloaded_error") == 2
    assert value(s, "complete_bridge_errors_total", **errors, error_type="api_error") == 1
    assert total(s, "complete_bridge_errors_total") == 4
    statuses = {
        dict(labels)["status"]: v for (name, labels), v in s.items()
        if name == "complete_bridge_requests_total" and v
    }  # fmt: skip
    assert statuses == {"529": 2, "418": 1, "400": 1, "200": 1}


def test_a_client_that_left_first_counts_as_status_none_and_a_disconnect() -> None:
    """No response status is "none", and the hang-up is counted."""
    metrics = Metrics()
    metrics.complete(
        CompleteRecord(
            format="v1", route="default", stream=True, status=None, client_disconnected=True
        )
    )
    s = rendered(metrics)
    requests = {**ROUTE, "mode": "translate", "format": "v1", "stream": "true", "status": "none"}
    assert value(s, "complete_bridge_requests_total", **requests) == 1
    assert value(s, "complete_bridge_client_disconnects_total", **ROUTE, mode="translate") == 1


def test_route_labels_are_capped() -> None:
    """Past MAX_ROUTES distinct routes ("default" and "(unrouted)" included from the
    start), new ones are counted as "other"; known ones keep their name."""
    metrics = Metrics()
    for i in range(MAX_ROUTES + 20):
        metrics.complete(CompleteRecord(format="v1", route=f"r{i}", arm="secondary", status=200))
    metrics.complete(CompleteRecord(format="v1", route="r0", arm="secondary", status=200))
    s = rendered(metrics)
    routes = {
        dict(labels)["route"] for name, labels in s if name == "complete_bridge_requests_total"
    }
    assert len(routes) == MAX_ROUTES + 1
    assert {"default", "(unrouted)", "other"} <= routes
    labels = {"arm": "secondary", "mode": "translate", "format": "v1", "stream": "false"}
    assert value(s, "complete_bridge_requests_total", route="other", **labels, status="200") == 22
    assert value(s, "complete_bridge_requests_total", route="r0", **labels, status="200") == 2


def test_label_values_outside_their_sets_become_other() -> None:
    """What a record does not close itself: an unknown method, an adaptation kind or a
    status outside 100-599 is "other"."""
    metrics = Metrics()
    metrics.complete(
        CompleteRecord(
            format="v2", route="default", status=999, adaptations=["renamed_everything", "7"]
        )
    )
    metrics.passthrough(PassthroughRecord(method="BREW", path="/x", status=404))
    metrics.passthrough(PassthroughRecord(method="GET", path="/x", status=None))
    s = rendered(metrics)
    other = {"route": "default", "arm": "primary", "mode": "translate", "format": "v2"}
    assert value(s, "complete_bridge_requests_total", **other, stream="false", status="other") == 1
    adaptations = "complete_bridge_adaptations_total"
    assert value(s, adaptations, route="default", arm="primary", kind="other") == 2
    passthrough = "complete_bridge_passthrough_requests_total"
    assert value(s, passthrough, method="other", status_class="4xx") == 1
    assert value(s, passthrough, method="GET", status_class="none") == 1


def test_shadow_comparisons_are_counted_by_result_and_stop_agreement() -> None:
    """Exact beats normalised beats differs; a failed secondary is "failed", one the bridge
    had no room for is "skipped", and neither has its stop reason compared."""
    metrics = Metrics()
    for record in [
        shadow_record(status=200, exact_match=True, normalised_match=True, stop_match=True),
        shadow_record(status=200, exact_match=False, normalised_match=True, stop_match=True),
        shadow_record(status=200, exact_match=False, normalised_match=False, stop_match=False),
        shadow_record(status=529, stop_match=False),
        shadow_record(status=200, error_type="api_error"),
        shadow_record(status=None),
        shadow_record(skipped=True),
    ]:
        metrics.shadow(record)
    s = rendered(metrics)
    for result, count in [
        ("exact", 1),
        ("normalised", 1),
        ("differs", 1),
        ("failed", 3),
        ("skipped", 1),
    ]:
        assert (
            value(s, "complete_bridge_shadow_comparisons_total", route="main", result=result)
            == count
        )
    agreement = "complete_bridge_shadow_stop_agreement_total"
    assert value(s, agreement, route="main", agree="true") == 2
    assert value(s, agreement, route="main", agree="false") == 1


def test_config_reloads_are_counted_by_result() -> None:
    """An applied reload and a rejected one are counted apart."""
    metrics = Metrics()
    for applied in (True, True, False):
        metrics.reloaded(applied)
    s = rendered(metrics)
    assert value(s, "complete_bridge_config_reloads_total", result="applied") == 2
    assert value(s, "complete_bridge_config_reloads_total", result="rejected") == 1


def test_a_fresh_metrics_has_every_known_series_at_zero() -> None:
    """Before any event, the series whose labels are known in advance exist at 0 (so a
    scrape sees 0 before the first event, and increase() counts it): reload results,
    pass-through methods and classes, and for calls no route matches and calls refused
    before routing every format, stream, status of the error table, error type,
    duration and TTFB histogram, token direction, adaptation kind and disconnect."""
    s = rendered(Metrics())
    assert all(v == 0 for (name, _), v in s.items() if not name.endswith("_created"))
    for result in ("applied", "rejected"):
        assert ("complete_bridge_config_reloads_total", frozenset({("result", result)})) in s
    passthrough = {
        (dict(labels)["method"], dict(labels)["status_class"])
        for name, labels in s
        if name == "complete_bridge_passthrough_requests_total"
    }
    assert {("GET", "2xx"), ("POST", "4xx"), ("DELETE", "5xx"), ("GET", "none")} <= passthrough
    for route in ("default", "(unrouted)"):
        arm = {"route": route, "arm": "primary"}
        for fmt in ("v1", "v2"):
            for stream in ("true", "false"):
                for status in (
                    "200",
                    "400",
                    "401",
                    "413",
                    "429",
                    "500",
                    "502",
                    "503",
                    "529",
                    "none",
                ):
                    labels = {**arm, "mode": "translate", "format": fmt, "stream": stream}
                    key = frozenset({**labels, "status": status}.items())
                    assert ("complete_bridge_requests_total", key) in s, (labels, status)
        for error_type in ("invalid_request_error", "overloaded_error", "timeout_error"):
            key = frozenset({**arm, "mode": "translate", "error_type": error_type}.items())
            assert ("complete_bridge_errors_total", key) in s
        for stream in ("true", "false"):
            timed = frozenset({**arm, "mode": "translate", "stream": stream}.items())
            for histogram in ("request_duration_seconds", "time_to_first_byte_seconds"):
                assert (f"complete_bridge_{histogram}_count", timed) in s
        for direction in ("input", "output"):
            key = frozenset({**arm, "direction": direction}.items())
            assert ("complete_bridge_tokens_total", key) in s
        key = frozenset({**arm, "kind": "capped_max_tokens"}.items())
        assert ("complete_bridge_adaptations_total", key) in s
        key = frozenset({**arm, "mode": "translate"}.items())
        assert ("complete_bridge_client_disconnects_total", key) in s
    assert not any(dict(labels).get("route") == "forced" for _, labels in s)


SHADOW = {**CANARY_ROUTE, "name": "shadow", "mode": "shadow"}


def series(samples: Samples, name: str, label: str) -> set[tuple[str, ...]]:
    """(route, arm-or-other label, `label`) of every series of `name`."""
    return {
        (dict(labels)["route"], dict(labels).get("arm", ""), dict(labels)[label])
        for sample, labels in samples
        if sample == name
    }


def test_expect_zeroes_the_series_of_the_routes_a_config_names() -> None:
    """A canary route has both arms, each in its own mode (no adaptations for a
    pass-through arm); a shadow route its primary and its comparison results; the kill
    switch its "forced" route. Expecting twice changes nothing."""
    metrics = Metrics()
    for _ in range(2):
        metrics.expect(parse_routes([CANARY_ROUTE, SHADOW], check_value), "passthrough")
    s = rendered(metrics)
    assert all(v == 0 for (name, _), v in s.items() if not name.endswith("_created"))
    modes = series(s, "complete_bridge_client_disconnects_total", "mode")
    assert modes == {
        ("(unrouted)", "primary", "translate"),
        ("default", "primary", "translate"),
        ("forced", "primary", "passthrough"),
        ("canary", "primary", "passthrough"),
        ("canary", "secondary", "translate"),
        ("shadow", "primary", "passthrough"),
    }
    adapted = {
        (route, arm) for route, arm, _ in series(s, "complete_bridge_adaptations_total", "kind")
    }
    assert adapted == {("(unrouted)", "primary"), ("default", "primary"), ("canary", "secondary")}
    shadow = series(s, "complete_bridge_shadow_comparisons_total", "result")
    assert shadow == {
        ("shadow", "", r) for r in ("exact", "normalised", "differs", "failed", "skipped")
    }
    agreement = series(s, "complete_bridge_shadow_stop_agreement_total", "agree")
    assert agreement == {("shadow", "", "true"), ("shadow", "", "false")}


def test_a_bug_in_counting_is_logged_not_raised() -> None:
    """A record the metrics cannot count (a value of the wrong type got in) still has its
    log line; the failure is logged, never raised into the call."""
    bridge = create_app(Settings()).state.bridge
    bad = CompleteRecord(format="v2", route="default", status=200, input_tokens="12")  # type: ignore[arg-type]
    with capture_logs() as logs:
        bridge.emit(bad)
    assert [log["event"] for log in logs] == ["complete", "metrics.observe_failed"]
    assert logs[1]["metrics_event"] == "complete"


def test_two_apps_keep_separate_registries() -> None:
    """No global registry: each Metrics counts only what it observed."""
    one, two = Metrics(), Metrics()
    one.reloaded(applied=True)
    assert value(rendered(one), "complete_bridge_config_reloads_total", result="applied") == 1
    assert value(rendered(two), "complete_bridge_config_reloads_total", result="applied") == 0


# Through the app


EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"message": {"id": "msg_9", "usage": {"input_tokens": 3}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
    ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
    ("message_stop", {}),
]
STREAM = b"".join(sse_event(kind, **data) for kind, data in EVENTS)


def scripted(request: httpx.Request) -> httpx.Response:
    """The upstream: OK, a stream, or a 529, as the request's prompt asks."""
    if request.url.path != "/v1/messages":
        return httpx.Response(200, json={"data": []})
    body = json.loads(request.content)
    if body["messages"][-1]["content"] == "overload":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return httpx.Response(529, json=error)
    if body.get("stream"):
        return httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=message())


async def test_metrics_endpoint_counts_what_the_app_served(tmp_path: Path) -> None:
    """After an OK call, a stream, an upstream 529, a bad prompt and a pass-through call,
    GET /metrics (with a client key: keys are required) shows each of them."""
    (tmp_path / "keys").write_text("sk-ant-test\n")
    async with loopback(scripted) as url:
        settings = Settings(upstream_url=url, client_keys=f"file:{tmp_path / 'keys'}")
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            running(app),
            httpx.AsyncClient(transport=transport, base_url="http://bridge") as client,
        ):
            calls = [
                legacy_body(tags={"team": "a"}),
                legacy_body(stream=True),
                legacy_body(prompt="\n\nHuman: overload\n\nAssistant:"),
                legacy_body(prompt="no turns at all"),
            ]
            statuses = [
                (await client.post("/v1/complete", json=body, headers=V2)).status_code
                for body in calls
            ]
            assert statuses == [200, 200, 529, 400]
            assert (await client.get("/v1/models", headers=V2)).status_code == 200
            assert (await client.get("/v1/models")).status_code == 401
            response = await client.get("/metrics", headers=V2)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    s = scrape(response.text)

    def requests(stream: str, status: str) -> float:
        labels = {**ROUTE, "mode": "translate", "format": "v2", "stream": stream}
        return value(s, "complete_bridge_requests_total", **labels, status=status)

    assert (requests("false", "200"), requests("true", "200")) == (1, 1)
    assert (requests("false", "529"), requests("false", "400")) == (1, 1)
    errors = {**ROUTE, "mode": "translate"}
    assert value(s, "complete_bridge_errors_total", **errors, error_type="overloaded_error") == 1
    assert (
        value(s, "complete_bridge_errors_total", **errors, error_type="invalid_request_error") == 1
    )
    assert value(s, "complete_bridge_tokens_total", **ROUTE, direction="input") == 12 + 3
    assert value(s, "complete_bridge_tokens_total", **ROUTE, direction="output") == 5 + 2
    assert value(s, "complete_bridge_adaptations_total", **ROUTE, kind="dropped_field") == 1
    for histogram in ("request_duration_seconds", "time_to_first_byte_seconds"):
        name = f"complete_bridge_{histogram}_count"
        assert value(s, name, **TIMED) == 3
        assert value(s, name, **{**TIMED, "stream": "true"}) == 1
    passthrough = "complete_bridge_passthrough_requests_total"
    assert value(s, passthrough, method="GET", status_class="2xx") == 1
    assert value(s, passthrough, method="GET", status_class="4xx") == 1
    assert (
        value(s, "complete_bridge_passthrough_requests_total", method="GET", status_class="none")
        == 0
    )


async def test_a_real_bridge_process_serves_metrics(tmp_path: Path) -> None:
    """A `complete-bridge serve` process counts a call it translated and serves /metrics."""
    async with (
        serving(FakeUpstream()) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log") as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=10) as client,
    ):
        body = legacy_body(prompt="\n\nHuman: SAY one two three\n\nAssistant:")
        answer = await client.post("/v1/complete", json=body, headers=V2)
        assert answer.status_code == 200
        s = scrape((await client.get("/metrics")).text)
    labels = {**ROUTE, "mode": "translate", "format": "v2", "stream": "false", "status": "200"}
    assert value(s, "complete_bridge_requests_total", **labels) == 1
    assert value(s, "complete_bridge_tokens_total", **ROUTE, direction="output") == 3
    assert value(s, "complete_bridge_request_duration_seconds_count", **TIMED) == 1


async def test_a_fresh_bridge_serves_zero_series_for_its_routes_and_adds_them_on_reload() -> None:
    """Before any call, GET /metrics shows the configured route's series at 0 and both
    reload results at 0; a reload that names a new route adds its series (at 0) and
    counts itself."""
    async with loopback(scripted) as url:
        first = replace(
            Settings(upstream_url=url), routes=parse_routes([CANARY_ROUTE], check_value)
        )
        second = replace(first, routes=parse_routes([SHADOW], check_value))
        app = create_app(first, reload=lambda: second)
        transport = httpx.ASGITransport(app=app)
        async with (
            running(app),
            httpx.AsyncClient(transport=transport, base_url="http://bridge") as client,
        ):
            before = scrape((await client.get("/metrics")).text)
            assert app.state.reloader.reload("test")
            after = scrape((await client.get("/metrics")).text)
    requests = {"mode": "translate", "format": "v1", "stream": "true", "status": "200"}
    canary = {"route": "canary", "arm": "secondary", **requests}
    assert ("complete_bridge_requests_total", frozenset(canary.items())) in before
    reloads = "complete_bridge_config_reloads_total"
    assert [value(before, reloads, result=r) for r in ("applied", "rejected")] == [0, 0]
    assert ("complete_bridge_config_reloads_total", frozenset({("result", "rejected")})) in before
    shadow = frozenset({"route": "shadow", "result": "exact"}.items())
    assert ("complete_bridge_shadow_comparisons_total", shadow) not in before
    assert after[("complete_bridge_shadow_comparisons_total", shadow)] == 0
    assert [value(after, reloads, result=r) for r in ("applied", "rejected")] == [1, 0]
    assert ("complete_bridge_requests_total", frozenset(canary.items())) in after
