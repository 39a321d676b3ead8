"""Signals at any moment, on real bridge processes (one, and a supervisor of two workers).

A signal handler runs in the thread it interrupts, between any two steps of whatever
that thread was doing: a write of the log, a fork, a reload, the start or the end of the
process. Whatever the moment: SIGTERM drains and ends the bridge by SIGTERM within
drain_timeout (and a little), with no traceback and no worker left behind; SIGHUP
reloads (or, while the bridge cannot reload yet or any more, is ignored), and never ends
it. The bridge is kept busy logging (calls back to back from a few clients) and signalled
after different lengths of that, or the instant a given line of its start is written."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_command, bridge_process, free_port, serving

V2 = {"anthropic-version": "2023-06-01"}
DRAIN_S = 1
DRAIN = {"BRIDGE_DRAIN_TIMEOUT": str(DRAIN_S)}
GRACE = 3  # seconds past drain_timeout a bridge may take to end
DELAYS = (0.05, 0.2, 0.45)  # seconds of load before a signal: other moments of the calls
GONE = {"ConnectError", "ReadError", "RemoteProtocolError"}  # a bridge that has stopped
HANGUP_EVERY = 0.002  # seconds between SIGHUPs of a storm


def workers_args(workers: int) -> tuple[str, ...]:
    return ("--workers", str(workers)) if workers > 1 else ()


@contextlib.asynccontextmanager
async def loaded(url: str, clients: int = 4) -> AsyncIterator[Counter[object]]:
    """`clients` tasks calling /v1/complete back to back while entered, so the bridge logs
    all the time; yields what came back, counted: statuses, and errors by their kind."""
    seen: Counter[object] = Counter()

    async def calls() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            while True:
                try:
                    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
                    seen[response.status_code] += 1
                except httpx.TransportError as exc:
                    seen[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(calls()) for _ in range(clients)]
    try:
        yield seen
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Piped:
    """A bridge process whose log is read as it is written (a pipe, not a file), so that a
    test can signal it the instant a line appears. Every line is kept in `text`."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url
        self.text: list[str] = []
        self.ended = False  # its log: all read
        self._changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.text.append(raw.decode())
            self._changed.set()
        self.ended = True
        self._changed.set()

    def events(self, name: str, **fields: object) -> list[dict[str, Any]]:
        """The log lines of event `name` (with these `fields`) so far."""
        lines = [json.loads(line) for line in self.text if line.startswith("{")]
        return [
            line
            for line in lines
            if line["event"] == name and all(line.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(self, name: str, count: int = 1, **fields: object) -> None:
        await self._until(lambda: len(self.events(name, **fields)) >= count)

    async def first_line(self) -> None:
        await self._until(lambda: bool(self.text))

    async def _until(self, done: Callable[[], bool], within: float = 10) -> None:
        async with asyncio.timeout(within):
            while not done():
                assert not self.ended, f"the bridge ended first: {self.text[-3:]}"
                self._changed.clear()
                await self._changed.wait()

    async def ready(self, client: httpx.AsyncClient) -> None:
        """Until /readyz answers 200; fails if the process ends first."""
        async with asyncio.timeout(15):
            while True:
                assert self.process.returncode is None, f"the bridge ended: {self.text[-3:]}"
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    async def end(self, within: float) -> int:
        """Its exit status, once it has ended (and its last line is read)."""
        code = await asyncio.wait_for(self.process.wait(), within)
        await asyncio.wait_for(self.reader, 5)
        return code


@contextlib.asynccontextmanager
async def piped(env: dict[str, str], args: tuple[str, ...]) -> AsyncIterator[Piped]:
    """A `complete-bridge serve` process on the demo upstream, its log read from its first
    line; killed after, if still running."""
    port = free_port()
    command, environ = bridge_command("demo:", port, env, args)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ
    )
    bridge = Piped(process, f"http://127.0.0.1:{port}")
    try:
        yield bridge
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        bridge.reader.cancel()


@contextlib.asynccontextmanager
async def hangups(process: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """A SIGHUP every HANGUP_EVERY seconds while entered, until the process ends."""

    async def storm() -> None:
        while process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                # Not send_signal: it polls the process first, and may reap it before
                # asyncio does (which then reports 255, not how it ended).
                os.kill(process.pid, signal.SIGHUP)
            await asyncio.sleep(HANGUP_EVERY)

    task = asyncio.create_task(storm())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def no_worker_left(bridge: Piped) -> bool:
    """Every worker the supervisor started has ended (and been reaped)."""
    for line in bridge.events("worker.started"):
        try:
            os.kill(line["pid"], 0)
        except ProcessLookupError:
            continue
        return False
    return True


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_at_any_moment_under_load_drains_and_ends_the_bridge(
    tmp_path: Path, workers: int
) -> None:
    """Busy logging, SIGTERM after each of DELAYS: the bridge ends by SIGTERM within
    drain_timeout, every worker stops cleanly (none killed), every call answered was
    answered whole and logged, and no line is a traceback."""
    for round_, delay in enumerate(DELAYS):
        log = tmp_path / f"bridge-{round_}.log"
        async with bridge_process("demo:", log, DRAIN, workers_args(workers)) as bridge:
            await bridge.wait_for("config.applied", workers)
            async with loaded(bridge.url) as seen:
                await asyncio.sleep(delay)
                sent = time.monotonic()
                bridge.process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(bridge.process.wait(), DRAIN_S + GRACE)
                took = time.monotonic() - sent
        assert code == -signal.SIGTERM, f"round {round_}"
        assert took < DRAIN_S + GRACE
        assert seen[200] > 0 and set(seen) <= {200, *GONE}, seen
        text = log.read_text()
        assert "Traceback" not in text
        lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
        events = [line["event"] for line in lines]
        assert events.count("bridge.stopped") == workers, f"round {round_}"
        assert "workers.killed" not in events and "worker.exited" not in events
        logged = [line for line in lines if line["event"] == "complete"]
        assert sum(line["status"] == 200 for line in logged) >= seen[200]


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_at_any_moment_under_load_reloads_and_serving_goes_on(
    tmp_path: Path, workers: int
) -> None:
    """Busy logging, SIGHUP after each of DELAYS: each time every worker reloads (its
    config.applied, source sighup), no call fails, and calls go on being answered."""
    log = tmp_path / "bridge.log"
    async with bridge_process("demo:", log, DRAIN, workers_args(workers)) as bridge:
        await bridge.wait_for("config.applied", workers)
        async with loaded(bridge.url) as seen:
            for round_, delay in enumerate(DELAYS, start=2):
                await asyncio.sleep(delay)
                bridge.process.send_signal(signal.SIGHUP)
                await bridge.wait_for("config.applied", workers * round_)
                answered = seen[200]
                async with asyncio.timeout(5):
                    while seen[200] < answered + 20:  # noqa: ASYNC110 (a count of answers)
                        await asyncio.sleep(0.01)
        assert bridge.process.returncode is None
        bridge.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bridge.process.wait(), DRAIN_S + GRACE) == -signal.SIGTERM
    assert set(seen) == {200}, seen  # nothing failed across the reloads
    applied = Counter(
        (line.get("worker"), line["source"]) for line in bridge.events("config.applied")
    )
    slots = [None] if workers == 1 else list(range(workers))
    assert applied == {
        **{(slot, "start"): 1 for slot in slots},
        **{(slot, "sighup"): len(DELAYS) for slot in slots},
    }
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_while_the_bridge_starts_or_stops_never_ends_it(workers: int) -> None:
    """SIGHUP after SIGHUP from the bridge's first line to its end: while it starts
    (before it can reload) and while it stops (after) they are ignored; in between they
    reload. It gets ready, serves, and SIGTERM still ends it by SIGTERM, every worker
    having stopped cleanly."""
    async with (
        piped(DRAIN, workers_args(workers)) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=10) as client,  # made before: slow
    ):
        await bridge.first_line()
        async with hangups(bridge.process):  # while it starts
            await bridge.ready(client)
            await bridge.wait_for("config.applied", workers, source="start")  # every worker's
        reloaded = len(bridge.events("config.reloaded"))
        bridge.process.send_signal(signal.SIGHUP)
        await bridge.wait_for("config.reloaded", reloaded + workers)
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
        assert response.status_code == 200
        bridge.process.send_signal(signal.SIGTERM)
        async with hangups(bridge.process):  # while it stops
            code = await bridge.end(DRAIN_S + GRACE)
    assert code == -signal.SIGTERM, "".join(bridge.text[-5:])
    assert len(bridge.events("bridge.stopped")) == workers
    assert not any("Traceback" in line for line in bridge.text)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_the_instant_the_bridge_starts_ends_it_leaving_no_worker(
    workers: int,
) -> None:
    """SIGTERM the instant the first line is written (for a supervisor, as it starts
    forking its workers): it ends by SIGTERM at once, not at the deadline, no worker is
    killed there and none outlives it."""
    async with piped(DRAIN, workers_args(workers)) as bridge:
        await bridge.first_line()
        sent = time.monotonic()
        bridge.process.send_signal(signal.SIGTERM)
        code = await bridge.end(DRAIN_S + GRACE)
        took = time.monotonic() - sent
    assert code == -signal.SIGTERM
    assert took < DRAIN_S, "a worker was told nothing and served on to the deadline"
    assert not bridge.events("workers.killed")
    assert no_worker_left(bridge)
    assert not any("Traceback" in line for line in bridge.text)


async def test_the_reloader_takes_sighup_while_serving_and_gives_it_back_as_it_found_it() -> None:
    """The app in this process, SIGHUP ignored before (as `serve` leaves it): while it
    serves, SIGHUP reloads; once stopped, SIGHUP is ignored again, not at its default
    (the end of the process), which ended a bridge that got a SIGHUP as it stopped."""
    reloads: list[int] = []

    def reload() -> Settings:
        reloads.append(1)
        return Settings(upstream_url="demo:")

    saved = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        async with serving(create_app(Settings(upstream_url="demo:"), reload=reload)):
            async with asyncio.timeout(5):
                while signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)  # until the reloader has taken it
                os.kill(os.getpid(), signal.SIGHUP)
                while not reloads:  # noqa: ASYNC110 (a reload has no event to wait on)
                    await asyncio.sleep(0.01)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, saved)
