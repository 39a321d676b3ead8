"""One legal request must not take the process down: the caps on what a body may hold
(stop sequences, JSON values) and the budget of bodies in flight (max_inflight_bytes),
through a real bridge process. The memory figures themselves are bench/memory.py's."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, serving
from tests.fakes.upstream import FakeUpstream, gated_upstream

BUDGET = {"BRIDGE_MAX_BODY_BYTES": "200000", "BRIDGE_MAX_INFLIGHT_BYTES": "300000"}
V2 = {"anthropic-version": "2023-06-01"}


def big(size: int, **overrides: Any) -> bytes:
    """A legacy body of `size` bytes (its Human turn padded)."""
    body = legacy_body(**overrides)
    pad = size - len(json.dumps(body).encode())
    body["prompt"] = "\n\nHuman: " + "x" * pad + body["prompt"].removeprefix("\n\nHuman: ")
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


async def test_stop_sequences_past_the_cap_get_a_400_naming_it(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log") as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
    ):
        stops = [f"s{i}" for i in range(1001)]
        response = await client.post("/v1/complete", json=legacy_body(stop_sequences=stops))
        assert response.status_code == 400
        assert response.json() == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "stop_sequences: at most 1000 are accepted, got 1001",
            },
        }
        # Three million of them (27 MB, under the body limit) are refused before parsing.
        many = json.dumps(legacy_body(stop_sequences=[f"{i:06x}" for i in range(3_000_000)]))
        response = await client.post("/v1/complete", content=many)
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            "request body has more than 10000 JSON values; a legacy request has a few dozen"
        )
        assert not upstream.called.is_set()


async def test_a_body_over_the_inflight_budget_gets_529_until_the_budget_is_free(
    tmp_path: Path,
) -> None:
    """A call held by the upstream keeps 150 kB of a 300 kB budget: a second 150 kB call
    fits no more (529 overloaded_error, retry-after), before its body is read, whether
    its length is declared or it comes chunked; once the first ends, the next is served."""
    upstream = gated_upstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log", BUDGET) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        try:
            held = await stack.enter_async_context(
                client.stream("POST", "/v1/complete", content=big(160_000, stream=True), headers=V2)
            )
            assert held.status_code == 200
            await asyncio.wait_for(upstream.called.wait(), 10)

            refused = await client.post("/v1/complete", content=big(150_000), headers=V2)
            assert refused.status_code == 529
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == {
                "type": "overloaded_error",
                "message": "the bridge holds as many request bytes as it may (300000 bytes, "
                "max_inflight_bytes); retry shortly",
            }

            async def chunked() -> AsyncIterator[bytes]:
                body = big(150_000)
                for start in range(0, len(body), 10_000):
                    yield body[start : start + 10_000]

            refused = await client.post("/v1/complete", content=chunked(), headers=V2)
            assert refused.status_code == 529
            assert refused.json()["error"]["type"] == "overloaded_error"

            small = await stack.enter_async_context(
                client.stream("POST", "/v1/complete", json=legacy_body(stream=True), headers=V2)
            )
            assert small.status_code == 200  # what still fits is served
        finally:
            upstream.gate.set()
        assert "second" in (await held.aread()).decode()
        assert "second" in (await small.aread()).decode()
        await stack.aclose()

        served = await client.post("/v1/complete", content=big(150_000, stream=True), headers=V2)
        assert served.status_code == 200
        complete = await bridge.wait_for("complete", 5)  # a log line follows its answer
    assert [line["status"] for line in complete] == [529, 529, 200, 200, 200]


async def test_a_budget_below_the_body_limit_is_refused_at_start(tmp_path: Path) -> None:
    """A body at max_body_bytes could never fit: the config is refused, naming both."""
    env = {"BRIDGE_MAX_BODY_BYTES": "200000", "BRIDGE_MAX_INFLIGHT_BYTES": "100000"}
    upstream = gated_upstream()
    async with serving(upstream) as upstream_url:
        try:
            async with bridge_process(upstream_url, tmp_path / "bridge.log", env):
                raise AssertionError("the bridge started")
        except RuntimeError:
            pass
    log = (tmp_path / "bridge.log").read_text()
    assert "max_inflight_bytes: expected at least max_body_bytes (200000" in log
