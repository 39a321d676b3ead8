"""A worker restarted after a config reload, on a real bridge with two workers: it serves
the config its sibling applied (not the one the bridge started with); when the file does
not load at that moment, it still starts, on the start-up config, and says so.

Which config answered is told by the `route` of each call's log line, with its `worker`:
config A has route "a", config B route "b"."""

import os
import signal
from pathlib import Path

from structlog.testing import capture_logs

from tests.fakes.servers import BridgeProcess, bridge_process
from tests.live.test_workers import TWO, complete, workers_of

CONFIG_A = '[[routes]]\nname = "a"\nmodel = "claude-opus-5"\n'
CONFIG_B = '[[routes]]\nname = "b"\nmodel = "claude-haiku-4-5"\n# a longer file\n'
BROKEN = '[[routes]]\nname = "c"\npercent = 150 # and more\n'
VICTIM = 0  # the worker slot killed


def write(path: Path, text: str) -> None:
    """Replace the file at once (a watcher never reads it half written)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def restart_victim(bridge: BridgeProcess) -> None:
    """SIGKILL worker VICTIM; return once its successor has started serving."""
    old_pid = workers_of(bridge)[VICTIM]
    os.kill(old_pid, signal.SIGKILL)
    await bridge.wait_for("worker.started", 3)
    assert workers_of(bridge)[VICTIM] != old_pid
    await bridge.wait_for("config.applied", 2 + len(bridge.events("config.reloaded")) + 1)


async def routes_served(bridge: BridgeProcess) -> dict[int, set[str]]:
    """Calls (a connection each: the kernel spreads them over the workers) until each
    worker has answered a few; the routes each worker answered them with."""
    before = len(bridge.events("complete"))
    for made in range(8, 200, 8):
        for _ in range(8):
            assert (await complete(bridge.url)).status_code == 200
        lines = (await bridge.wait_for("complete", before + made))[before:]
        served: dict[int, list[str]] = {}
        for line in lines:
            served.setdefault(line["worker"], []).append(line["route"])
        if len(served) == 2 and min(len(routes) for routes in served.values()) >= 3:
            return {worker: set(routes) for worker, routes in served.items()}
    raise AssertionError(f"one worker answered none of 200 calls: {served}")


async def test_a_restarted_worker_serves_the_config_its_sibling_applied(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(CONFIG_A)
    args = (*TWO, "--config", str(config))
    async with bridge_process("demo:", tmp_path / "bridge.log", args=args) as bridge:
        await bridge.wait_for("config.applied", 2)
        write(config, CONFIG_B)
        reloaded = await bridge.wait_for("config.reloaded", 2, within=10)
        assert {line["worker"] for line in reloaded} == {0, 1}
        await restart_victim(bridge)
        applied = [line for line in bridge.events("config.applied") if line["worker"] == VICTIM]
        assert (applied[-1]["source"], applied[-1]["routes"][0]["name"]) == ("start", "b")
        served = await routes_served(bridge)
        assert served == {VICTIM: {"b"}, 1 - VICTIM: {"b"}}  # the restarted one too
        assert bridge.events("worker.config_rejected") == []
        assert bridge.process.returncode is None


async def test_a_worker_restarted_while_the_file_is_broken_starts_on_the_start_up_config(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(CONFIG_A)
    args = (*TWO, "--config", str(config))
    async with bridge_process("demo:", tmp_path / "bridge.log", args=args) as bridge:
        await bridge.wait_for("config.applied", 2)
        write(config, BROKEN)
        rejected = await bridge.wait_for("config.rejected", 2, within=10)
        assert {line["worker"] for line in rejected} == {0, 1}
        await restart_victim(bridge)
        (warning,) = bridge.events("worker.config_rejected")
        assert (warning["worker"], warning["level"]) == (VICTIM, "warning")
        assert "percent" in warning["error"] and str(config) in warning["error"]
        assert warning["serving"] == "the settings the bridge started with"
        served = await routes_served(bridge)
        assert served == {VICTIM: {"a"}, 1 - VICTIM: {"a"}}  # it started, on config A
        assert bridge.events("worker.exited")[-1]["exit_status"] == -signal.SIGKILL
        assert bridge.events("workers.stopped") == []  # nothing stopped the bridge
        assert bridge.process.returncode is None
        write(config, CONFIG_B)  # fixed: every worker, the restarted one too, applies it
        reloaded = await bridge.wait_for("config.reloaded", 2, within=10)
        assert {line["worker"] for line in reloaded} == {0, 1}
        assert await routes_served(bridge) == {0: {"b"}, 1: {"b"}}


def test_what_takes_effect_on_restart_stays_as_the_bridge_started(tmp_path: Path) -> None:
    """The settings a restarted worker gets (in this process): the config as it is now,
    but its port, log format, ... as its siblings' (the sockets and server they share);
    the start-up settings when the config now does not load."""
    from proxy.config.file import from_file
    from proxy.config.settings import Settings
    from proxy.worker_start import settings_now

    config = tmp_path / "bridge.toml"
    config.write_text(CONFIG_A)
    started = from_file(Settings(), config)
    config.write_text(f'port = 9999\nlog_format = "console"\nworkers = 3\n{CONFIG_B}')
    now = settings_now(started, {}, lambda: from_file(Settings(), config), config)
    assert (now.routes[0].name, now.port, now.log_format, now.workers) == (
        "b",
        started.port,
        started.log_format,
        started.workers,
    )
    config.write_text('upstream_key = "env:MISSING_RESTART_KEY"\n' + CONFIG_B)  # reads, fails
    with capture_logs() as logs:
        kept = settings_now(started, {}, lambda: from_file(Settings(), config), config)
    assert kept is started
    assert [line["event"] for line in logs] == ["worker.config_rejected"]
    assert "MISSING_RESTART_KEY" in logs[0]["error"]
