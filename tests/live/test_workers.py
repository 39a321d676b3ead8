"""`workers` on real processes: N workers on one port, their metrics summed exactly,
canary buckets the same on every worker, SIGHUP and a config file change reaching every
worker (a bad file refused by all), a dead worker restarted with its counts kept, SIGTERM
draining them all, and two bridges on one host that never touch each other's metrics."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from structlog import get_logger
from structlog.testing import capture_logs

from proxy.rollout.routes import bucket, fingerprint
from tests.fakes.factories import legacy_body
from tests.fakes.servers import BridgeProcess, bridge_process, serving
from tests.fakes.upstream import gated_upstream

V2 = {"anthropic-version": "2023-06-01"}
CANARY = """
[[routes]]
name = "canary"
mode = "canary"
percent = 50
primary = { mode = "translate" }
secondary = { mode = "translate", model = "claude-haiku-4-5" }
"""
TWO = ("--workers", "2")


def fresh(url: str) -> httpx.AsyncClient:
    """A client that opens a connection per request: the kernel spreads them over workers."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, timeout=30, limits=limits)


async def complete(url: str, key: str = "sk-ant-worker-test", **body: Any) -> httpx.Response:
    async with fresh(url) as client:
        headers = {**V2, "x-api-key": key}
        return await client.post("/v1/complete", json=legacy_body(**body), headers=headers)


def requests_total(exposition: str, **labels: str) -> float:
    """complete_bridge_requests_total summed over the series matching `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name != "complete_bridge_requests_total":
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def scrape(url: str) -> str:
    async with fresh(url) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text


def exists(path: str) -> bool:
    return Path(path).exists()


def is_dir(path: str) -> bool:
    return Path(path).is_dir()


def workers_of(bridge: BridgeProcess) -> dict[int, int]:
    """worker slot: pid, of the workers started so far (the latest in each slot)."""
    return {line["worker"]: line["pid"] for line in bridge.events("worker.started")}


async def test_workers_share_the_port_sum_metrics_exactly_and_agree_on_buckets(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(CANARY)
    keys = [f"sk-ant-caller-{n}" for n in range(12)]
    async with bridge_process(
        "demo:", tmp_path / "bridge.log", args=(*TWO, "--config", str(config))
    ) as bridge:
        await bridge.wait_for("config.applied", 2)
        good = [complete(bridge.url, key) for key in keys * 3]
        streamed = [complete(bridge.url, keys[0], stream=True) for _ in range(4)]
        answers = [await call for call in [*good, *streamed]]
        async with fresh(bridge.url) as client:
            bad = [await client.post("/v1/complete", content=b"{no", headers=V2) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 40
        assert [b.status_code for b in bad] == [400] * 6
        await bridge.wait_for("complete", 46)
        scrapes = [await scrape(bridge.url) for _ in range(6)]
        lines = bridge.events("complete")
    served = Counter(line["worker"] for line in lines)
    assert set(served) == {0, 1}, served  # both workers served calls
    for text in scrapes:  # whichever worker answered the scrape: the same sums
        assert requests_total(text, status="200") == 40
        assert requests_total(text, status="200", stream="true") == 4
        assert requests_total(text, status="400") == 6
    by_caller: dict[str, set[tuple[str, int]]] = {}
    for line in lines:
        if line["status"] == 200:
            by_caller.setdefault(line["caller"], set()).add((line["arm"], line["worker"]))
    arms_seen = set()
    for key in keys:
        caller = fingerprint(key.encode())
        assert caller is not None
        expected = "secondary" if bucket("canary", caller) < 50 else "primary"
        assert {arm for arm, _ in by_caller[caller]} == {expected}
        arms_seen.add(expected)
    assert arms_seen == {"primary", "secondary"}
    spread = [c for c in by_caller.values() if len({worker for _, worker in c}) == 2]
    assert spread, "no caller was served by both workers"  # the same bucket on both


async def test_sighup_and_file_changes_reach_every_worker_and_a_bad_file_is_refused_by_all(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(CANARY)
    async with bridge_process(
        "demo:", tmp_path / "bridge.log", args=(*TWO, "--config", str(config))
    ) as bridge:
        await bridge.wait_for("config.applied", 2)
        bridge.process.send_signal(signal.SIGHUP)
        reloads = await bridge.wait_for("config.reloaded", 2)
        assert {(line["worker"], line["source"]) for line in reloads} == {
            (0, "sighup"),
            (1, "sighup"),
        }
        config.write_text(CANARY.replace("percent = 50", "percent = 150"))
        rejected = await bridge.wait_for("config.rejected", 2, within=10)
        assert {line["worker"] for line in rejected} == {0, 1}
        assert all("percent" in line["error"] for line in rejected)
        assert (await complete(bridge.url)).status_code == 200  # the config in force stays
        config.write_text(CANARY.replace("percent = 50", "percent = 0"))
        applied = await bridge.wait_for("config.reloaded", 4, within=10)
        assert {(line["worker"], line["source"]) for line in applied[2:]} == {
            (0, "file"),
            (1, "file"),
        }
        assert len(bridge.events("config.applied")) == 6  # start, SIGHUP, file: on each


async def test_a_dead_worker_is_restarted_and_its_counts_still_sum(tmp_path: Path) -> None:
    async with bridge_process("demo:", tmp_path / "bridge.log", args=TWO) as bridge:
        await bridge.wait_for("config.applied", 2)
        for _ in range(10):
            assert (await complete(bridge.url)).status_code == 200
        await bridge.wait_for("complete", 10)
        served = Counter(line["worker"] for line in bridge.events("complete"))
        victim = max(served, key=lambda slot: served[slot])  # one with counts to lose
        old_pid = workers_of(bridge)[victim]
        os.kill(old_pid, signal.SIGKILL)
        (exited,) = await bridge.wait_for("worker.exited")
        assert (exited["worker"], exited["pid"], exited["exit_status"]) == (victim, old_pid, -9)
        await bridge.wait_for("worker.started", 3)
        new_pid = workers_of(bridge)[victim]
        assert new_pid != old_pid
        await bridge.wait_for("config.applied", 3)
        for _ in range(5):
            assert (await complete(bridge.url)).status_code == 200
        assert requests_total(await scrape(bridge.url), status="200") == 15
        assert bridge.process.returncode is None


async def test_sigterm_drains_every_worker_and_removes_the_metrics_directory(
    tmp_path: Path,
) -> None:
    upstream = gated_upstream()
    async with serving(upstream) as upstream_url, contextlib.AsyncExitStack() as stack:
        env = {"BRIDGE_DRAIN_TIMEOUT": "20"}
        bridge = await stack.enter_async_context(
            bridge_process(upstream_url, tmp_path / "bridge.log", env, args=TWO)
        )
        await bridge.wait_for("config.applied", 2)
        (starting,) = bridge.events("workers.starting")
        directory = starting["metrics_dir"]
        assert is_dir(directory) and Path(directory).name.startswith("complete-bridge-metrics-")
        try:
            calls = [asyncio.create_task(complete(bridge.url, stream=True)) for _ in range(6)]
            await asyncio.sleep(1)  # all six held at the upstream's gate
            assert not any(call.done() for call in calls)
            bridge.process.send_signal(signal.SIGTERM)
            draining = await bridge.wait_for("bridge.draining", 3)
            assert {line.get("worker") for line in draining} == {None, 0, 1}
            assert bridge.process.returncode is None
            upstream.gate.set()
            answers = await asyncio.gather(*calls)
            assert await asyncio.wait_for(bridge.process.wait(), 15) == -signal.SIGTERM
        finally:
            upstream.gate.set()
    assert [a.status_code for a in answers] == [200] * 6
    texts = ["".join(_completions(a.text)) for a in answers]
    assert texts == [" first second"] * 6
    assert len(bridge.events("bridge.stopped")) == 2
    assert not exists(directory)


def _completions(stream: str) -> list[str]:
    data = [line[5:] for line in stream.splitlines() if line.startswith("data:")]
    return [json.loads(item).get("completion", "") for item in data]


async def test_two_bridges_on_one_host_never_share_or_wipe_metrics(tmp_path: Path) -> None:
    async with bridge_process("demo:", tmp_path / "a.log", args=TWO) as first:
        await first.wait_for("config.applied", 2)
        for _ in range(5):
            assert (await complete(first.url)).status_code == 200
        for round_ in range(2):  # a second bridge starts, serves, stops; twice
            log = tmp_path / f"b{round_}.log"
            async with bridge_process("demo:", log, args=TWO) as second:
                await second.wait_for("config.applied", 2)
                assert requests_total(await scrape(second.url), status="200") == 0
                for _ in range(3):
                    assert (await complete(second.url)).status_code == 200
                assert requests_total(await scrape(second.url), status="200") == 3
                assert requests_total(await scrape(first.url), status="200") == 5
                dirs = {b.events("workers.starting")[0]["metrics_dir"] for b in (first, second)}
                assert len(dirs) == 2
                second.process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(second.process.wait(), 15)
            assert not exists(second.events("workers.starting")[0]["metrics_dir"])
            assert is_dir(first.events("workers.starting")[0]["metrics_dir"])
            assert requests_total(await scrape(first.url), status="200") == 5


async def test_workers_refusing_to_start_stop_the_bridge_with_status_2(tmp_path: Path) -> None:
    log = tmp_path / "bridge.log"
    env = {"BRIDGE_UPSTREAM_KEY": "env:MISSING_BRIDGE_KEY"}
    with contextlib.suppress(RuntimeError):  # it never gets ready
        async with bridge_process("demo:", log, env, args=TWO):
            raise AssertionError("the bridge served with a key it cannot read")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    failed = [line for line in lines if line["event"] == "bridge.start_failed"]
    assert failed and "MISSING_BRIDGE_KEY" in failed[0]["error"]
    assert [line["status"] for line in lines if line["event"] == "workers.stopped"] == [2]


def test_the_supervisor_restarts_passes_sighup_on_and_stops_its_workers(tmp_path: Path) -> None:
    """The supervisor in this process over stand-in workers (forked, sleeping): one
    killed is restarted in its slot, SIGHUP reaches each, SIGTERM ends them all; a
    worker that refuses to start (exit 2) stops the rest with 2."""
    from proxy.config.settings import Settings
    from proxy.workers import _Supervisor

    def sleeper(slot: int, restart: bool) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, lambda *_: (tmp_path / f"hup-{slot}-{os.getpid()}").touch())
        (tmp_path / f"start-{os.getpid()}").write_text(str(restart))  # started again?
        for _ in range(300):
            time.sleep(0.1)

    def refuser(slot: int, restart: bool) -> None:
        if slot == 1:
            raise SystemExit(2)
        sleeper(slot, restart)

    saved = {sig: signal.getsignal(sig) for sig in STOLEN}
    try:
        with capture_logs() as logs:
            settings, metrics_dir = Settings(workers=2, drain_timeout=1), str(tmp_path)
            supervisor = _Supervisor(settings, sleeper, get_logger(), metrics_dir)
            timeline = threading.Thread(target=_script, args=(logs,), daemon=True)
            timeline.start()
            status = supervisor.run()
            timeline.join(10)
            refused = _Supervisor(settings, refuser, get_logger(), metrics_dir).run()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert (status, refused) == (0, 2)
    events = [line["event"] for line in logs]
    assert events.count("worker.exited") == 2  # the one killed, then the one refusing
    killed, refusing = [line for line in logs if line["event"] == "worker.exited"]
    assert (killed["worker"], killed["exit_status"]) == (0, -signal.SIGKILL)
    assert (refusing["worker"], refusing["exit_status"]) == (1, 2)
    first = [line for line in logs if line["event"] == "worker.started"][:3]
    assert [line["worker"] for line in first] == [0, 1, 0]  # slot 0 again, a new pid
    assert len({line["pid"] for line in first}) == 3
    restarts = [(tmp_path / f"start-{line['pid']}").read_text() for line in first]
    assert restarts == ["False", "False", "True"]  # only slot 0's second worker
    hups = sorted(path.name.split("-")[1] for path in tmp_path.glob("hup-*"))
    assert hups == ["0", "1"]  # each live worker got SIGHUP once
    assert events.count("bridge.draining") == 2


STOLEN = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM)


def _script(logs: list[dict[str, Any]]) -> None:
    """From another thread, as an operator and a crash would: kill worker 0, wait for
    its successor, SIGHUP the supervisor, then SIGTERM it."""
    deadline = time.monotonic() + 10
    while len([line for line in logs if line["event"] == "worker.started"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first = next(line["pid"] for line in logs if line["event"] == "worker.started")
    os.kill(first, signal.SIGKILL)
    while len([line for line in logs if line["event"] == "worker.started"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the new worker's handler is set
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGTERM)


async def test_a_prometheus_multiproc_dir_of_other_programs_is_never_read_nor_wiped(
    tmp_path: Path,
) -> None:
    """PROMETHEUS_MULTIPROC_DIR set on the host for another program: neither one bridge
    nor a bridge's workers sum that program's files into /metrics, write theirs there,
    or touch that program's."""
    shared = tmp_path / "shared"
    shared.mkdir()
    other = "from prometheus_client import Counter; Counter('other_app_calls', 'x').inc(7)"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", other, env=env)
    assert await process.wait() == 0
    before = {path.name: path.read_bytes() for path in shared.iterdir()}
    assert before  # the other program's counter file
    for args in ((), TWO):
        log = tmp_path / f"bridge{len(args)}.log"
        async with bridge_process(
            "demo:", log, {"PROMETHEUS_MULTIPROC_DIR": str(shared)}, args
        ) as b:
            await b.wait_for("config.applied", 2 if args else 1)
            assert (await complete(b.url)).status_code == 200
            text = await scrape(b.url)
        assert "other_app_calls" not in text
        assert requests_total(text, status="200") == 1
    assert {path.name: path.read_bytes() for path in shared.iterdir()} == before
