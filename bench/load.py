"""Load generators, and the checks every answer goes through.

Two generators measure the same way for every target (direct, reference, bridge): a
closed loop of `concurrency` connections, each sending its next request as soon as the
last answer is read, for a fixed time after a warm-up on the same connections.
- `wrk` (Debian's package, C, with wrk.lua) for non-stream runs: never the bottleneck.
- the asyncio client of client.py for streams (time to first byte, events), for the
  1,000 open streams, and for non-stream runs with `--loadgen python`.
Both check every answer they get: status 200 and the exact expected content.
"""

import asyncio
import contextlib
import json
import math
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from checks import Check
from client import Connection

T = TypeVar("T")
WRK_LUA = Path(__file__).with_name("wrk.lua")
WRK_MISSING = (
    "wrk is not installed: install it with `apt-get install -y wrk` (Debian/Ubuntu; "
    "`brew install wrk` on macOS), or run with `--loadgen python`"
)


@dataclass(frozen=True)
class Spec:
    """One kind of request to one target, and how to tell its answer is right."""

    url: str
    body: bytes
    headers: dict[str, str]
    check: Check
    expect: tuple[str, ...]  # substrings of a right non-stream answer (for wrk.lua)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @cached_property
    def raw(self) -> bytes:
        """The whole request as it goes on the wire."""
        lines = [f"POST {urlsplit(self.url).path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"content-length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class Run:
    """What one measured run saw. `cpu_s` is the server process's, over the run."""

    concurrency: int
    seconds: float
    requests: int  # answers received
    checked: int  # answers whose content was checked
    bad: int  # wrong answers (status or content)
    errors: int  # connection errors and time-outs
    p50_ms: float
    p99_ms: float
    cpu_s: float
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None
    events: int = 0
    interference: float | None = None  # share of the server's CPU others took meanwhile

    def summary(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["rps"] = self.requests / self.seconds if self.seconds else 0.0
        out["cpu_us_per_request"] = 1e6 * self.cpu_s / self.requests if self.requests else None
        if self.events:
            out["events_per_cpu_s"] = self.events / self.cpu_s if self.cpu_s else None
        return {k: v for k, v in out.items() if v is not None}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values, in their unit; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------- asyncio generator


@dataclass
class _Tally:
    latencies: list[float]
    ttfbs: list[float]
    bad: int = 0
    errors: int = 0
    events: int = 0


class _Connections:
    """One keep-alive connection per worker, kept from the warm-up to the measured run."""

    def __init__(self, spec: Spec, count: int) -> None:
        self.spec = spec
        self.open: list[Connection | None] = [None] * count

    async def get(self, worker: int) -> Connection:
        connection = self.open[worker]
        if connection is None or connection.closed:
            connection = await Connection.open(self.spec.host, self.spec.port)
            self.open[worker] = connection
        return connection

    def close(self) -> None:
        for connection in self.open:
            if connection is not None:
                connection.close()


async def _loop(connections: _Connections, workers: int, seconds: float) -> _Tally:
    spec, tally = connections.spec, _Tally([], [])
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            try:
                connection = await connections.get(index)
                started = time.perf_counter()
                answer = await connection.request(spec.raw)
            except (OSError, TimeoutError):
                tally.errors += 1
                await asyncio.sleep(0.01)  # a refused connect must not spin
                continue
            tally.latencies.append(answer.done_at - started)
            tally.ttfbs.append(answer.first_at - started)
            events = spec.check(answer.status, answer.body)
            if events is None:
                tally.bad += 1
            else:
                tally.events += events

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return tally


async def _python_run(
    spec: Spec, concurrency: int, seconds: float, warmup: float, cpu: Callable[[], float]
) -> Run:
    connections = _Connections(spec, concurrency)
    try:
        await _loop(connections, concurrency, warmup)
        cpu_before, started = cpu(), time.perf_counter()
        tally = await _loop(connections, concurrency, seconds)
        elapsed, cpu_s = time.perf_counter() - started, cpu() - cpu_before
    finally:
        connections.close()
    ms = [x * 1000 for x in tally.latencies]
    ttfb = [x * 1000 for x in tally.ttfbs]
    return Run(
        concurrency=concurrency,
        seconds=elapsed,
        requests=len(ms),
        checked=len(ms),
        bad=tally.bad,
        errors=tally.errors,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        cpu_s=cpu_s,
        ttfb_p50_ms=percentile(ttfb, 50),
        ttfb_p99_ms=percentile(ttfb, 99),
        events=tally.events,
    )


async def once(spec: Spec) -> bool:
    """One request on a fresh connection: is its answer right?"""
    connection = await Connection.open(spec.host, spec.port)
    try:
        answer = await connection.request(spec.raw)
    finally:
        connection.close()
    return spec.check(answer.status, answer.body) is not None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (the same client for every target)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def python_run(
    spec: Spec, concurrency: int, seconds: float, warmup: float, cpu: Callable[[], float]
) -> Run:
    """A closed loop with the asyncio client: every answer timed (TTFB too) and checked."""
    return run_async(_python_run(spec, concurrency, seconds, warmup, cpu))


# ---------------------------------------------------------------- wrk


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_run(
    spec: Spec,
    concurrency: int,
    seconds: float,
    warmup: float,
    cpu: Callable[[], float],
    workdir: Path,
) -> Run:
    """A closed loop with wrk (one thread); wrk.lua checks every answer it gets."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(WRK_MISSING)
    body_file = workdir / "wrk-body.json"
    body_file.write_bytes(spec.body)
    args = [str(body_file), *(f"expect={e}" for e in spec.expect)]
    args += [f"header={name}: {value}" for name, value in spec.headers.items()]

    def wrk_for(duration: float) -> list[str]:
        options = [f"-c{concurrency}", f"-d{max(1, math.ceil(duration))}s", "--timeout", "10s"]
        return [wrk, "-t1", *options, "--latency", "-s", str(WRK_LUA), spec.url, "--", *args]

    def wrk_out(duration: float) -> str:
        argv = wrk_for(duration)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)  # noqa: S603 (our own argv)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    if warmup > 0:
        wrk_out(warmup)
    cpu_before = cpu()
    stdout = wrk_out(seconds)
    cpu_s = cpu() - cpu_before
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{stdout}")
    result = json.loads(line[6:])
    return Run(
        concurrency=concurrency,
        seconds=result["duration_us"] / 1e6,
        requests=result["requests"],
        checked=result["ok"] + result["bad"],
        bad=result["bad"],
        errors=result["errors"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_s=cpu_s,
    )


# ---------------------------------------------------------------- many open streams


async def open_streams(
    spec: Spec,
    count: int,
    when_open: Callable[[], None],
    open_timeout: float,
    finish_timeout: float,
) -> dict[str, Any]:
    """Open `count` streams at once, each on its own connection; once all have their
    first bytes, call `when_open` (which samples memory and lets the upstream finish
    them); then wait for all of them to finish, checking each answer."""
    opened = 0
    all_open = asyncio.Event()

    def first_bytes() -> None:
        nonlocal opened
        opened += 1
        if opened == count:
            all_open.set()

    async def one() -> int | None:
        try:
            connection = await Connection.open(spec.host, spec.port)
        except OSError:
            return None
        try:
            answer = await connection.request(
                spec.raw, within_s=open_timeout + finish_timeout, on_first=first_bytes
            )
        except (OSError, TimeoutError):
            return None
        finally:
            connection.close()
        return spec.check(answer.status, answer.body)

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_open.wait(), open_timeout)
    open_s = time.perf_counter() - started
    all_were_open = opened == count
    when_open()
    released = time.perf_counter()
    done, late = await asyncio.wait(tasks, timeout=finish_timeout)
    finish_s = time.perf_counter() - released
    for task in late:
        task.cancel()
    results = [task.result() for task in done]
    return {
        "streams": count,
        "all_open_at_once": all_were_open,
        "open_s": open_s,
        "finish_s": finish_s,
        "complete": sum(r is not None for r in results),
        "bad": sum(r is None for r in results),
        "late": len(late),
    }
