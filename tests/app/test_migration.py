"""Migration controls in-process: every route mode end to end, with an upstream that
serves both the Messages API and the legacy /v1/complete (as Anthropic's did), told
apart by host so per-arm upstreams can be checked: each host on a loopback socket."""

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from structlog.testing import capture_logs

from proxy.config.settings import Settings, check_value
from proxy.edge.app import create_app
from proxy.rollout.route_tables import parse_routes
from proxy.rollout.routes import Arm, bucket, fingerprint
from tests.fakes.factories import CANARY_ROUTE, legacy_body, message
from tests.fakes.loopback import loopback, running

KEY = "sk-ant-migration-0123456789"
V2 = {"anthropic-version": "2023-06-01", "x-api-key": KEY}
LEGACY_ANSWER = {
    "type": "completion",
    "id": "compl_legacy",
    "completion": " Light scatters blue.",
    "stop_reason": "stop_sequence",
    "model": "claude-2.1",
    "stop": "\n\nHuman:",
    "log_id": "compl_legacy",
}


class Upstream:
    """Answers /v1/messages with `text` and /v1/complete with LEGACY_ANSWER; remembers
    every request; `delay` holds answers; `fail` answers 529."""

    def __init__(self, text: str = "Light scatters blue.") -> None:
        self.text = text
        self.requests: list[httpx.Request] = []
        self.delay = 0.0
        self.fail_hosts: set[str] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.url.host in self.fail_hosts:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            return httpx.Response(529, json=error)
        body = json.loads(request.content)
        if request.url.path == "/v1/complete" and body.get("stream"):
            events = [
                {**LEGACY_ANSWER, "stop_reason": None, "stop": None},
                {**LEGACY_ANSWER, "completion": ""},
            ]
            content = b"".join(
                b"event: completion\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events
            )
            headers = {"request-id": "req_legacy", "content-type": "text/event-stream"}
            return httpx.Response(200, content=content, headers=headers)
        if request.url.path == "/v1/complete":
            return httpx.Response(200, json=LEGACY_ANSWER, headers={"request-id": "req_legacy"})
        return httpx.Response(
            200, json=message(self.text, model=body["model"]), headers={"request-id": "req_m"}
        )

    def calls(self, host: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if (host is None or r.url.host == host) and (path is None or r.url.path == path)
        ]


def settings_with(*routes: dict[str, Any], **settings: Any) -> Settings:
    return replace(Settings(**settings), routes=parse_routes(list(routes), check_value))


# The `bridge` fixture: make(settings, upstream=None, environ=None) -> (client of the app,
# its upstream, the app).
MakeBridge = Callable[..., Awaitable[tuple[httpx.AsyncClient, Upstream, Starlette]]]


@pytest.fixture
async def bridge() -> AsyncIterator[MakeBridge]:
    """The app on `settings`, each upstream host it names (`http://main`, `http://new`)
    served by `upstream` on a loopback of its own."""
    async with AsyncExitStack() as stack:

        async def make(
            settings: Settings,
            upstream: Upstream | None = None,
            environ: Mapping[str, str] | None = None,
        ) -> tuple[httpx.AsyncClient, Upstream, Starlette]:
            upstream = upstream or Upstream()
            urls: dict[str, str] = {}

            async def served(url: str) -> str:
                host = urlsplit(url).hostname or ""
                if host not in urls:
                    urls[host] = await stack.enter_async_context(loopback(upstream, host))
                return urls[host]

            async def arm(arm: Arm) -> Arm:
                if "upstream_url" not in arm.overrides:
                    return arm
                url = await served(arm.overrides["upstream_url"])
                return replace(arm, overrides={**arm.overrides, "upstream_url": url})

            routes = tuple(
                [
                    replace(
                        route,
                        primary=await arm(route.primary),
                        secondary=await arm(route.secondary) if route.secondary else None,
                    )
                    for route in settings.routes
                ]
            )
            url = await served(settings.upstream_url)
            app = create_app(replace(settings, upstream_url=url, routes=routes), environ=environ)
            await stack.enter_async_context(running(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://b")
            await stack.enter_async_context(client)
            return client, upstream, app

        yield make


def completes(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "complete"]


async def test_no_routes_translates_and_logs_route_arm_mode_caller(bridge: MakeBridge) -> None:
    client, upstream, _ = await bridge(Settings(upstream_url="http://main"))
    with capture_logs() as logs:
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == 200
    assert upstream.calls(path="/v1/messages")
    (line,) = completes(logs)
    assert (line["route"], line["arm"], line["mode"]) == ("default", "primary", "translate")
    assert line["caller"] == hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert KEY not in json.dumps(logs)


async def test_passthrough_sends_the_legacy_call_unchanged(bridge: MakeBridge) -> None:
    """The body byte for byte, to /v1/complete, with the client's key and version; the
    answer relayed as it came."""
    route = {"name": "legacy", "mode": "passthrough", "upstream_url": "http://legacy"}
    client, upstream, _ = await bridge(settings_with(route, upstream_url="http://main"))
    content = json.dumps(legacy_body(tags={"x": 1}), separators=(",", ":")).encode()
    with capture_logs() as logs:
        response = await client.post("/v1/complete", content=content, headers=V2)
    assert response.status_code == 200
    assert response.json() == LEGACY_ANSWER
    assert response.headers["request-id"] == "req_legacy"
    (sent,) = upstream.calls()
    assert (sent.url.host, sent.url.path, sent.content) == ("legacy", "/v1/complete", content)
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    (line,) = completes(logs)
    assert (line["route"], line["mode"], line["upstream_status"]) == ("legacy", "passthrough", 200)
    assert line["legacy_model"] == "claude-2.1"


async def test_passthrough_model_override_and_arm_key(bridge: MakeBridge) -> None:
    route = {
        "name": "legacy",
        "mode": "passthrough",
        "model": "claude-instant-1.2",
        "upstream_key": "env:LEGACY_KEY",
    }
    client, upstream, _ = await bridge(
        settings_with(route), environ={"LEGACY_KEY": "sk-ant-bridge-held"}
    )
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == 200
    (sent,) = upstream.calls()
    assert json.loads(sent.content)["model"] == "claude-instant-1.2"
    assert int(sent.headers["content-length"]) == len(sent.content)
    assert sent.headers["x-api-key"] == "sk-ant-bridge-held"


async def test_translate_route_overrides_model_and_upstream(bridge: MakeBridge) -> None:
    route = {"name": "opus", "match": {"model": "claude-2*"}, "model": "claude-opus-5",
             "upstream_url": "http://other"}  # fmt: skip
    client, upstream, _ = await bridge(settings_with(route, upstream_url="http://main"))
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.json()["model"] == "claude-2.1"  # echoed as asked
    (sent,) = upstream.calls()
    assert (sent.url.host, json.loads(sent.content)["model"]) == ("other", "claude-opus-5")
    await client.post("/v1/complete", json=legacy_body(model="claude-instant-1"), headers=V2)
    assert upstream.calls()[-1].url.host == "main"


async def test_route_body_limit(bridge: MakeBridge) -> None:
    """A route's max_body_bytes holds its calls; others keep the global limit."""
    small = {"name": "small", "match": {"model": "tiny"}, "max_body_bytes": 2048}
    client, _, _ = await bridge(settings_with(small))
    big_prompt = "\n\nHuman: " + "x" * 4000 + "\n\nAssistant:"
    refused = await client.post(
        "/v1/complete", json=legacy_body(model="tiny", prompt=big_prompt), headers=V2
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["type"] == "request_too_large"
    fine = await client.post("/v1/complete", json=legacy_body(prompt=big_prompt), headers=V2)
    assert fine.status_code == 200


async def test_canary_sends_the_callers_share_to_the_secondary(bridge: MakeBridge) -> None:
    client, upstream, _ = await bridge(settings_with(CANARY_ROUTE))
    keys = [f"sk-ant-caller-{n}" for n in range(60)]
    arms: dict[str, set[tuple[str, str]]] = {}
    with capture_logs() as logs:
        for key in keys * 2:  # each caller twice: the same arm both times
            headers = {**V2, "x-api-key": key}
            response = await client.post("/v1/complete", json=legacy_body(), headers=headers)
            assert response.status_code == 200
    for line in completes(logs):
        arms.setdefault(line["caller"], set()).add((line["arm"], line["mode"]))
    assert all(len(seen) == 1 for seen in arms.values())  # sticky
    secondary = {c for c, seen in arms.items() if seen == {("secondary", "translate")}}
    expected = {caller(k) for k in keys if bucket("canary", caller(k)) < 30}
    assert secondary == expected and 0 < len(secondary) < len(keys)
    assert len(upstream.calls(host="new")) == 2 * len(secondary)
    assert len(upstream.calls(host="legacy")) == 2 * (len(keys) - len(secondary))


def caller(key: str) -> str:
    """The caller name the bridge logs for `key`."""
    name = fingerprint(key.encode())
    assert name is not None  # only a missing key has none
    return name


SHADOW = {**CANARY_ROUTE, "name": "shadow", "mode": "shadow", "percent": 100}


async def shadows_done(app: Starlette) -> None:
    await asyncio.gather(*app.state.bridge.shadows.pending)


@pytest.mark.parametrize("stream", [False, True])
async def test_shadow_compares_in_the_background(bridge: MakeBridge, stream: bool) -> None:
    """The primary (legacy pass-through) answers; the translation is asked the same in
    the background and the two compared in a `shadow` line."""
    client, upstream, app = await bridge(settings_with(SHADOW))
    with capture_logs() as logs:
        response = await client.post("/v1/complete", json=legacy_body(stream=stream), headers=V2)
        assert response.status_code == 200
        await shadows_done(app)
    (line,) = completes(logs)
    assert (line["route"], line["arm"], line["mode"]) == ("shadow", "primary", "passthrough")
    (shadow,) = [entry for entry in logs if entry["event"] == "shadow"]
    assert shadow["route"] == "shadow" and shadow["status"] == 200
    assert (shadow["primary_mode"], shadow["secondary_mode"]) == ("passthrough", "translate")
    assert shadow["exact_match"] and shadow["normalised_match"] and shadow["stop_match"]
    assert shadow["caller"] == line["caller"]
    (asked,) = upstream.calls(host="new")
    assert json.loads(asked.content).get("stream") in (None, False)  # whole, even for a stream


async def test_shadow_differences_are_reported(bridge: MakeBridge) -> None:
    client, _, app = await bridge(settings_with(SHADOW), Upstream(text="light SCATTERS\nblue."))
    with capture_logs() as logs:
        await client.post("/v1/complete", json=legacy_body(), headers=V2)
        await shadows_done(app)
    (shadow,) = [entry for entry in logs if entry["event"] == "shadow"]
    assert not shadow["exact_match"] and shadow["normalised_match"]


async def test_a_failing_or_slow_shadow_never_touches_the_primary(bridge: MakeBridge) -> None:
    """The secondary answers 529 after a delay: the client's answer came before, right;
    the shadow line records the failure."""
    upstream = Upstream()
    upstream.fail_hosts.add("new")
    client, _, app = await bridge(settings_with(SHADOW), upstream)
    with capture_logs() as logs:
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
        assert response.json() == LEGACY_ANSWER
        assert app.state.bridge.shadows.pending  # still running after the answer
        await shadows_done(app)
    (shadow,) = [entry for entry in logs if entry["event"] == "shadow"]
    assert (shadow["status"], shadow["error_type"]) == (529, "overloaded_error")
    assert shadow["exact_match"] is None  # not compared


async def test_no_shadow_when_the_primary_failed(bridge: MakeBridge) -> None:
    upstream = Upstream()
    upstream.fail_hosts.add("legacy")
    client, _, app = await bridge(settings_with(SHADOW), upstream)
    with capture_logs() as logs:
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
        assert response.status_code == 529
        await shadows_done(app)
    assert not [entry for entry in logs if entry["event"] == "shadow"]
    assert not upstream.calls(host="new")


async def test_the_kill_switch_sends_everything_one_way(bridge: MakeBridge) -> None:
    settings = replace(settings_with(CANARY_ROUTE, SHADOW), force_mode="passthrough")
    client, upstream, _ = await bridge(settings)
    with capture_logs() as logs:
        for n in range(10):
            headers = {**V2, "x-api-key": f"sk-{n}"}
            await client.post("/v1/complete", json=legacy_body(), headers=headers)
    assert {(line["route"], line["mode"]) for line in completes(logs)} == {
        ("forced", "passthrough")
    }
    assert len(upstream.calls(path="/v1/complete")) == 10


async def test_metrics_are_labelled_by_route_and_arm(bridge: MakeBridge) -> None:
    client, _, _ = await bridge(settings_with(CANARY_ROUTE))
    for n in range(20):
        await client.post("/v1/complete", json=legacy_body(), headers={**V2, "x-api-key": f"k{n}"})
    text = (await client.get("/metrics")).text
    assert 'route="canary"' in text and 'arm="secondary"' in text and 'mode="passthrough"' in text


async def test_shadow_reads_a_compressed_primary(bridge: MakeBridge) -> None:
    """Legacy SDKs ask for gzip; the legacy endpoint's gzipped answer goes to the client
    as it came, and is still read for the comparison."""

    class Gzipping(Upstream):
        async def __call__(self, request: httpx.Request) -> httpx.Response:
            response = await super().__call__(request)
            if request.url.path != "/v1/complete":
                return response
            headers = {"content-encoding": "gzip", "content-type": "application/json"}
            return httpx.Response(200, content=gzip.compress(response.content), headers=headers)

    client, _, app = await bridge(settings_with(SHADOW), Gzipping())
    with capture_logs() as logs:
        response = await client.post(
            "/v1/complete", json=legacy_body(), headers={**V2, "accept-encoding": "gzip"}
        )
        assert response.headers["content-encoding"] == "gzip"
        assert response.json() == LEGACY_ANSWER
        await shadows_done(app)
    (shadow,) = [entry for entry in logs if entry["event"] == "shadow"]
    assert shadow["exact_match"] and shadow["stop_match"]


async def test_a_call_refused_before_routing_is_logged_unrouted(bridge: MakeBridge) -> None:
    client, _, _ = await bridge(settings_with(CANARY_ROUTE))
    with capture_logs() as logs:
        response = await client.post("/v1/complete", content=b"{not json", headers=V2)
    assert response.status_code == 400
    (line,) = completes(logs)
    assert line["route"] == "(unrouted)" and line["arm"] is None
