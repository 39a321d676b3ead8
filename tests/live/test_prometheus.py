"""The Grafana dashboard against a real Prometheus scraping a real bridge process.

A known mix of traffic goes through a `complete-bridge serve` process (translated calls
v1 and v2, streamed and not, upstream errors, bad requests, a canary's two arms, a
shadow route's comparisons, pass-through, a client that hangs up, a rejected and an
applied config reload that adds a route), Prometheus (Debian's `prometheus`; scripts/test
installs it) scrapes it every second, and EVERY query of deploy/grafana/complete-bridge.json
is evaluated through Prometheus's HTTP API and checked against that traffic.

Exact values, not a tolerance: `$__rate_interval` is replaced by a window longer than the
whole test, and each query is evaluated at the timestamp of the last scrape (taken after
the traffic ended). Then a counter's `increase()` has nothing to extrapolate: the first
sample of every series in the window is the 0 the bridge created it with (Prometheus
extrapolates back no further than where a counter would reach 0), and the last sample is
at the window's end. So `rate(...) * window` is the exact count; only the latency
quantiles, which interpolate inside histogram buckets, are checked against buckets.
"""

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from proxy.rollout.routes import bucket, fingerprint
from tests.fakes.answers import words
from tests.fakes.factories import legacy_body
from tests.fakes.servers import BridgeProcess, bridge_process, free_port, serving
from tests.fakes.sse import event
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.prometheus

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "complete-bridge.json"
WINDOW = 600  # seconds: longer than the whole test, so every series starts in it at 0
SLOW = 0.6  # seconds the legacy upstream takes on the shadow route: its latency bucket
VERSION = {"anthropic-version": "2023-06-01"}
ROUTES = """
[[routes]]
name = "canary"
match.model = "claude-2.0"
mode = "canary"
percent = 50
primary = { mode = "translate" }
secondary = { mode = "passthrough" }

[[routes]]
name = "shadow"
match.model = "claude-instant-1.2"
mode = "shadow"
percent = 100
primary = { mode = "passthrough" }
secondary = { mode = "translate" }
"""
LATE_ROUTE = """
[[routes]]
name = "late"
match.header = "x-team: late"
"""


# The upstream: the fake Messages API, plus a legacy /v1/complete and /v1/models.


def _human(prompt: str) -> str:
    return prompt.rsplit("\n\nHuman: ", 1)[-1].split("\n\nAssistant:")[0]


async def legacy_complete(request: Request) -> Response:
    """The old API, scripted like the fake Messages API (`SAY <text>`), so a shadow's two
    answers agree or not as the prompt asks: `SAY LOUD ...` answers in capitals (the same
    text once normalised), `SAY OTHER ...` other text, `SAY CUT ...` the same text with
    another stop reason; `SLOW` streams a line every 0.2 s. The shadow route's model
    answers after SLOW seconds."""
    body = await request.json()
    said = _human(body["prompt"])
    text = said[4:] if said.startswith("SAY ") else "echo: " + said
    stop_reason = "stop_sequence"
    if text.startswith("LOUD "):
        text = text.upper()
    elif text.startswith("OTHER "):
        text = "something else entirely"
    elif text.startswith("CUT "):
        stop_reason = "max_tokens"
    if body["model"] == "claude-instant-1.2":
        await asyncio.sleep(SLOW)
    if said == "SLOW":

        async def lines() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield event("completion", completion=" tick", stop_reason=None)
                await asyncio.sleep(0.2)

        return StreamingResponse(lines(), media_type="text/event-stream")
    answer = {
        "type": "completion",
        "id": "compl_legacy",
        "completion": " " + text,
        "stop_reason": stop_reason,
        "stop": "\n\nHuman:" if stop_reason == "stop_sequence" else None,
        "model": body["model"],
    }
    return JSONResponse(answer)


async def models(request: Request) -> JSONResponse:
    return JSONResponse({"data": [], "has_more": False})


def upstream() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/complete", legacy_complete, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Mount("", app=FakeUpstream()),
        ]
    )


# The traffic, and what each call must count


@dataclass(frozen=True)
class Sent:
    """What one /v1/complete call must count."""

    route: str
    arm: str
    mode: str
    status: int
    stream: bool = False
    error_type: str | None = None
    tokens: tuple[int, int] = (0, 0)  # input, output
    adaptation: str | None = None
    disconnected: bool = False


def prompt(text: str) -> str:
    return f"\n\nHuman: {text}\n\nAssistant:"


def said(text: str) -> tuple[int, int]:
    """Tokens (words, to the fake upstream) in and out for a `SAY <text>` prompt."""
    return len(words("SAY " + text)), len(words(text))


def canary_keys() -> tuple[str, str]:
    """A key the canary route answers with its primary arm, and one with its secondary."""
    keys = [f"sk-ant-prometheus-{n}" for n in range(100)]
    arms = {bucket("canary", fingerprint(key.encode()) or "") < 50: key for key in keys}
    return arms[False], arms[True]


@dataclass
class Traffic:
    client: httpx.AsyncClient
    bridge: BridgeProcess
    sent: list[Sent]
    passed: Counter[tuple[str, str]]  # pass-through (method, status class)

    async def call(
        self,
        expected: Sent,
        body: dict[str, Any] | bytes,
        *,
        v2: bool = True,
        key: str = "sk-ant-prometheus",
        headers: dict[str, str] | None = None,
    ) -> None:
        sent = {"x-api-key": key, **(VERSION if v2 else {}), **(headers or {})}
        if isinstance(body, bytes):
            answer = await self.client.post("/v1/complete", content=body, headers=sent)
        else:
            answer = await self.client.post("/v1/complete", json=body, headers=sent)
        assert answer.status_code == expected.status, answer.text
        self.sent.append(expected)

    async def hang_up(self, expected: Sent, body: dict[str, Any], key: str) -> None:
        """A streamed call the client leaves after its first chunk."""
        headers = {"x-api-key": key, **VERSION}
        async with self.client.stream("POST", "/v1/complete", json=body, headers=headers) as r:
            assert r.status_code == expected.status
            async for _ in r.aiter_raw():
                break
        self.sent.append(expected)

    async def pass_through(self, method: str, path: str, status: int, **kwargs: Any) -> None:
        headers = {"x-api-key": "sk-ant-prometheus", **VERSION}
        answer = await self.client.request(method, path, headers=headers, **kwargs)
        assert answer.status_code == status, answer.text
        self.passed[(method, f"{status // 100}xx")] += 1


async def send_first_traffic(traffic: Traffic) -> None:
    """Every kind of call the dashboard shows, on the routes of the first config."""
    call = traffic.call
    default: dict[str, Any] = {"route": "default", "arm": "primary", "mode": "translate"}
    ok = {**default, "status": 200}
    text = "one two three"
    await call(Sent(**ok, tokens=said(text)), legacy_body(prompt=prompt("SAY " + text)), v2=False)
    await call(
        Sent(**ok, tokens=said("hello world"), adaptation="dropped_field"),
        legacy_body(prompt=prompt("SAY hello world"), tags={"team": "a"}),
    )
    await call(
        Sent(**ok, stream=True, tokens=said("a b c d")),
        legacy_body(prompt=prompt("SAY a b c d"), stream=True),
        v2=False,
    )
    await call(
        Sent(**ok, stream=True, tokens=said("x y")),
        legacy_body(prompt=prompt("SAY x y"), stream=True),
    )
    await call(
        Sent(**ok, tokens=said("capped"), adaptation="capped_max_tokens"),
        legacy_body(prompt=prompt("SAY capped"), max_tokens_to_sample=100_000),
    )
    for status, error_type, stream in [
        (529, "overloaded_error", False),
        (429, "rate_limit_error", False),
        (500, "api_error", True),
    ]:
        expected = Sent(**default, status=status, error_type=error_type, stream=stream)
        body = legacy_body(prompt=prompt(f"FAIL {status}"), stream=stream)
        await call(expected, body, v2=not stream)
    bad: dict[str, Any] = {"status": 400, "error_type": "invalid_request_error"}
    await call(Sent(**default, **bad), legacy_body(prompt="no turns at all"))
    unrouted: dict[str, Any] = {"route": "(unrouted)", "arm": "primary", "mode": "translate"}
    await call(Sent(**unrouted, **bad), b"{not json")

    primary_key, secondary_key = canary_keys()
    canary = legacy_body(model="claude-2.0", prompt=prompt("SAY canary primary"))
    await call(
        Sent("canary", "primary", "translate", 200, tokens=said("canary primary")),
        canary,
        key=primary_key,
    )
    await call(Sent("canary", "secondary", "passthrough", 200), canary, key=secondary_key)
    await traffic.hang_up(
        Sent("canary", "secondary", "passthrough", 200, stream=True, disconnected=True),
        legacy_body(model="claude-2.0", prompt=prompt("SLOW"), stream=True),
        secondary_key,
    )

    shadowed = ["SAY same text", "SAY LOUD words here", "SAY OTHER text", "SAY CUT text"]
    shadowed.append("FAIL 529")  # the legacy primary answers; the translation fails
    await asyncio.gather(
        *(
            call(
                Sent("shadow", "primary", "passthrough", 200),
                legacy_body(model="claude-instant-1.2", prompt=prompt(text)),
            )
            for text in shadowed
        )
    )

    await traffic.pass_through("GET", "/v1/models", 200)
    await traffic.pass_through("GET", "/v1/models", 200)
    await traffic.pass_through("GET", "/v1/nothing", 404)
    messages = {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    await traffic.pass_through("POST", "/v1/messages", 200, json=messages)


# Prometheus


@dataclass
class Prometheus:
    url: str
    client: httpx.AsyncClient

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({} if at is None else {"time": f"{at:.3f}"})}
        answer = await self.client.get(self.url + "/api/v1/query", params=params)
        assert answer.status_code == 200, f"{expr}: {answer.text}"
        data = answer.json()["data"]
        assert data["resultType"] == "vector", expr
        return list(data["result"])

    async def wait_for(self, expr: str, check: Callable[[list[dict[str, Any]]], bool]) -> None:
        async with asyncio.timeout(20):
            while not check(await self.query(expr)):  # noqa: ASYNC110 (polling a server)
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, target: str) -> AsyncIterator[Prometheus]:
    """A real Prometheus on a free loopback port, scraping `target` (host:port) every
    second into a temporary store; stopped after."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is required (apt-get install prometheus); scripts/test installs it"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "bridge", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    command = [
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with (tmp_path / "prometheus.log").open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            async with asyncio.timeout(20):
                while True:
                    assert process.returncode is None, (tmp_path / "prometheus.log").read_text()
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(url + "/-/ready")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
            yield Prometheus(url, client)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


# The dashboard's queries


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, with Grafana's variables given concrete
    values: every route and arm ("All"), and the window for `$__rate_interval`."""
    dashboard = json.loads(DASHBOARD.read_text())
    values = {"$__rate_interval": f"{WINDOW}s", "$__range": f"{WINDOW}s"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            values["$" + variable["name"]] = variable["allValue"]
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(values, key=len, reverse=True):
                expr = expr.replace(name, values[name])
            assert "$" not in expr, f"a variable left in {expr}"
            queries.append((panel["title"], expr))
    return queries


Key = tuple[str | None, ...]  # label values; None where a call has none of that label


def by(
    sent: list[Sent], key: Callable[[Sent], Key], amount: Callable[[Sent], int] = lambda s: 1
) -> dict[Key, int]:
    """The traffic summed by `key` (zero amounts left out)."""
    totals: Counter[Key] = Counter()
    for s in sent:
        totals[key(s)] += amount(s)
    return {k: v for k, v in totals.items() if v}


def counts(result: list[dict[str, Any]], labels: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """A rate query's result as counts over the window (rate x window), zeros left out."""
    out: dict[tuple[str, ...], int] = {}
    for series in result:
        count = float(series["value"][1]) * WINDOW
        assert math.isfinite(count) and abs(count - round(count)) < 1e-6, series
        if round(count):
            out[tuple(series["metric"][label] for label in labels)] = round(count)
    return out


def ratios(result: list[dict[str, Any]], labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """A ratio query's result; NaN (nothing to divide by) left out."""
    return {
        tuple(series["metric"][label] for label in labels): float(series["value"][1])
        for series in result
        if not math.isnan(float(series["value"][1]))
    }


async def test_every_dashboard_query_counts_the_traffic_sent(tmp_path: Path) -> None:
    """Each panel of the dashboard, through a real Prometheus, shows what was sent: per
    route and arm, per status, per error type, per token direction, per adaptation, the
    hang-up, the shadow results and agreement, pass-through and both reload results;
    latency quantiles for every (route, arm) that had calls, in the bucket the slow route's
    calls fell in. Counters created at 0 make the first event of each count."""
    config = tmp_path / "bridge.toml"
    config.write_text(ROUTES)
    traffic_log = tmp_path / "bridge.log"
    async with (
        asyncio.timeout(120),
        serving(upstream()) as upstream_url,
        bridge_process(upstream_url, traffic_log, args=("--config", str(config))) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=15) as client,
        prometheus(tmp_path, bridge.url.removeprefix("http://")) as prom,
    ):
        # The first scrape sees every series at 0, before any traffic.
        await prom.wait_for('up{job="bridge"}', lambda r: bool(r) and r[0]["value"][1] == "1")
        traffic = Traffic(client, bridge, [], Counter())
        await send_first_traffic(traffic)

        replace_file(config, "[[routes]\n")  # a TOML error: refused, the routes stay
        await wait_for_log(bridge, "config.rejected", 1)
        replace_file(config, LATE_ROUTE + ROUTES)
        await wait_for_log(bridge, "config.reloaded", 1)
        # A scrape sees the new route's series at 0 before its first call.
        await prom.wait_for('complete_bridge_requests_total{route="late"}', bool)
        late: dict[str, Any] = {"route": "late", "arm": "primary", "mode": "translate"}
        await traffic.call(
            Sent(**late, status=200, tokens=said("late one")),
            legacy_body(prompt=prompt("SAY late one")),
            headers={"x-team": "late"},
        )
        await traffic.call(
            Sent(**late, status=529, error_type="overloaded_error"),
            legacy_body(prompt=prompt("FAIL 529")),
            v2=False,
            headers={"x-team": "late"},
        )

        await wait_for_log(bridge, "complete", len(traffic.sent))
        await wait_for_log(bridge, "shadow", 5)
        done = time.time()
        # The first scrape that started after the traffic ended: evaluate at its time.
        await prom.wait_for('timestamp(up{job="bridge"})', lambda r: float(r[0]["value"][1]) > done)
        (up,) = await prom.query('timestamp(up{job="bridge"})')
        at = float(up["value"][1])

        results: dict[str, list[list[dict[str, Any]]]] = {}
        for title, expr in dashboard_queries():
            results.setdefault(title, []).append(await prom.query(expr, at))
        label_values = {
            name: (await prom.client.get(
                f"{prom.url}/api/v1/label/{name}/values",
                params={"match[]": "complete_bridge_requests_total"},
            )).json()["data"]
            for name in ("route", "arm")
        }  # fmt: skip

    sent = traffic.sent
    panels = results  # each check takes its panel's results; none may be left unchecked
    requests = by(sent, route_arm)
    assert counts(one(panels, "Requests per second by route and arm"), ("route", "arm")) == requests
    failed = [s for s in sent if s.error_type]
    errors = by(failed, lambda s: (s.route, s.arm, s.error_type))
    assert errors[("default", "primary", "overloaded_error")] == 1
    panel = one(panels, "Errors per second by route, arm and error type")
    assert counts(panel, ("route", "arm", "error_type")) == errors
    erred = by(failed, route_arm)
    panel = one(panels, "Error ratio by route and arm")  # NaN only where nothing was sent
    assert ratios(panel, ("route", "arm")) == pytest.approx(
        {key: erred.get(key, 0) / total for key, total in requests.items()}
    )
    panel = one(panels, "Responses by status")
    assert counts(panel, ("status",)) == by(sent, lambda s: (str(s.status),))

    for title in ("Request duration p50 / p95 / p99", "Time to first byte p50 / p95 / p99"):
        for quantile in panels.pop(title):  # interpolated in buckets: bounds, not counts
            seconds = ratios(quantile, ("route", "arm"))
            assert set(seconds) == set(requests), title  # NaN where no call was timed
            # Every call on the shadow route took SLOW (0.6 s) or more: its bucket starts at 0.5.
            assert seconds[("shadow", "primary")] >= 0.5, (title, seconds)
            assert all(0 < value <= 5 for value in seconds.values()), (title, seconds)

    tokens = by(sent, lambda s: (s.route, s.arm, "input"), lambda s: s.tokens[0])
    tokens |= by(sent, lambda s: (s.route, s.arm, "output"), lambda s: s.tokens[1])
    panel = one(panels, "Tokens per second")
    assert counts(panel, ("route", "arm", "direction")) == tokens
    adaptations = by([s for s in sent if s.adaptation], lambda s: (s.adaptation,))
    assert adaptations == {("dropped_field",): 1, ("capped_max_tokens",): 1}
    assert counts(one(panels, "Adaptations per second by kind"), ("kind",)) == adaptations
    panel = one(panels, "Client disconnects per second")
    hung_up = by([s for s in sent if s.disconnected], lambda s: (s.route, s.arm, s.mode))
    assert hung_up == {("canary", "secondary", "passthrough"): 1}
    assert counts(panel, ("route", "arm", "mode")) == hung_up

    text_agreement, stop_agreement = panels.pop("Shadow agreement ratio by route")
    assert ratios(text_agreement, ("route",)) == {("shadow",): 3 / 4}  # exact 2, normalised 1
    assert ratios(stop_agreement, ("route",)) == {("shadow",): 3 / 4}  # CUT's stop differs
    panel = one(panels, "Shadow comparisons by result")
    assert counts(panel, ("route", "result")) == {
        ("shadow", "exact"): 2,
        ("shadow", "normalised"): 1,
        ("shadow", "differs"): 1,
        ("shadow", "failed"): 1,
    }
    panel = one(panels, "Pass-through requests per second")
    assert counts(panel, ("method", "status_class")) == dict(traffic.passed)
    panel = one(panels, "Config reloads")
    assert counts_of_increase(panel, ("result",)) == {("applied",): 1, ("rejected",): 1}
    assert panels == {}, f"dashboard panels this test does not check: {list(panels)}"

    assert set(label_values["route"]) == {route for route, _ in requests}
    assert set(label_values["arm"]) == {"primary", "secondary"}


def route_arm(sent: Sent) -> tuple[str, str]:
    return sent.route, sent.arm


def one(panels: dict[str, list[list[dict[str, Any]]]], title: str) -> list[dict[str, Any]]:
    """The result of a one-query panel, taken out of `panels`."""
    (result,) = panels.pop(title)
    return result


def counts_of_increase(
    result: list[dict[str, Any]], labels: tuple[str, ...]
) -> dict[tuple[str, ...], int]:
    """An increase query's result (already a count), zeros left out."""
    out: dict[tuple[str, ...], int] = {}
    for series in result:
        count = float(series["value"][1])
        assert abs(count - round(count)) < 1e-6, series
        if round(count):
            out[tuple(series["metric"][label] for label in labels)] = round(count)
    return out


def replace_file(path: Path, text: str) -> None:
    """Replace the config file at once (the bridge's watcher never reads half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def wait_for_log(bridge: BridgeProcess, event: str, count: int) -> None:
    """Until the bridge has logged `event` `count` times (no more)."""
    seen = len(await bridge.wait_for(event, count, within=10))
    assert seen == count, f"{event}: {seen} lines, expected {count}"
