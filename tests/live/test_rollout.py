"""A rolling update under load, simulated on this machine as the shared-service manifests
make Kubernetes do it (deploy/kubernetes/service: 2 replicas, maxSurge 1, maxUnavailable
0, a PodDisruptionBudget of one, preStop sleep, then SIGTERM and the drain): real bridge
processes with 2 workers each behind a balancer standing in for the Service
(tests/fakes/balancer.py), clients calling all along, streams included, retrying as the
legacy SDKs do. No call fails; the new replicas serve; fewer than 2 never serve. How to
run the same on a real cluster: docs/deployment.md, Rolling updates."""

import asyncio
import contextlib
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fakes.balancer import Balancer
from tests.fakes.factories import legacy_body
from tests.fakes.servers import BridgeProcess, bridge_process, serving
from tests.fakes.upstream import FakeUpstream

V2 = {"x-api-key": "sk-ant-test-rollout", "anthropic-version": "2023-06-01"}
REPLICAS = 2
CLIENTS = 6
PRE_STOP = 0.5  # seconds between leaving the endpoints and SIGTERM (the manifests: 5)
SDK_RETRIES = 2  # what the legacy SDKs retry: connection errors, 408/409/429/5xx


@dataclass
class Tally:
    calls: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)


async def caller(url: str, number: int, tally: Tally, stop: asyncio.Event) -> None:
    """Call until told to stop (each call on a new connection, as a client behind a
    Service often is); a call that fails after the SDK's retries is a failure."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        while not stop.is_set():
            stream = (tally.calls + number) % 2 == 0
            for attempt in range(SDK_RETRIES + 1):
                try:
                    response = await client.post(
                        "/v1/complete", json=legacy_body(stream=stream), headers=V2
                    )
                    outcome = _verdict(response, stream)
                except httpx.TransportError as exc:
                    outcome = f"transport: {exc!r}"
                if outcome is None:
                    break
                if attempt == SDK_RETRIES:
                    tally.failures.append(outcome)
                else:
                    tally.retries += 1
            tally.calls += 1


def _verdict(response: httpx.Response, stream: bool) -> str | None:
    """None when the answer is whole and right, else what was wrong."""
    if response.status_code != 200:
        return f"{response.status_code}: {response.text[:200]}"
    if not stream:
        return None if response.json()["stop_reason"] else "no stop_reason"
    events = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    last = json.loads(events[-1]) if events else {}
    return None if last.get("stop_reason") else f"stream cut: {response.text[-200:]}"


async def test_a_rolling_update_under_load_fails_no_call(tmp_path: Path) -> None:
    balancer, tally, stop = Balancer(), Tally(), asyncio.Event()
    async with (
        serving(FakeUpstream()) as upstream_url,
        balancer.serving() as port,
        contextlib.AsyncExitStack() as pods,
    ):

        async def pod(name: str) -> BridgeProcess:
            env = {"BRIDGE_WORKERS": "2", "BRIDGE_DRAIN_TIMEOUT": "10"}
            bridge = await pods.enter_async_context(
                bridge_process(upstream_url, tmp_path / f"{name}.log", env)
            )
            await bridge.wait_for("config.applied", 2)  # both workers ready
            balancer.add(_port(bridge))
            return bridge

        old = [await pod(f"old-{n}") for n in range(REPLICAS)]
        url = f"http://127.0.0.1:{port}"
        callers = [asyncio.create_task(caller(url, n, tally, stop)) for n in range(CLIENTS)]
        await asyncio.sleep(1)
        new = []
        for n, leaving in enumerate(old):  # maxSurge 1, maxUnavailable 0: one at a time
            new.append(await pod(f"new-{n}"))  # surge: the new one is ready first
            await asyncio.sleep(0.5)
            balancer.remove(_port(leaving))  # deleted: out of the endpoints...
            await asyncio.sleep(PRE_STOP)  # ... while preStop sleeps
            leaving.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(leaving.process.wait(), 20) == -signal.SIGTERM
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*callers)
    assert tally.failures == [], tally.failures[:5]
    assert tally.calls > 50, tally.calls
    assert balancer.fewest == REPLICAS  # never fewer: the PDB's and maxUnavailable 0's promise
    for bridge in (*old, *new):
        answered = [line for line in bridge.events("complete") if line["status"] == 200]
        assert answered, f"{bridge.log_path.name} served no call"
        assert {line["worker"] for line in answered} <= {0, 1}
    for bridge in old:
        assert len(bridge.events("bridge.stopped")) == 2  # both workers drained and stopped
    print(f"rollout: {tally.calls} calls, {tally.retries} retried, 0 failed")


def _port(bridge: BridgeProcess) -> int:
    return int(bridge.url.rsplit(":", 1)[1])
