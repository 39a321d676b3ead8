"""Benchmark the bridge against a direct call and a bare pass-through, in one run.

    .venv/bin/python bench/run.py [--quick] [--loadgen wrk|python] [--json FILE]

Starts on 127.0.0.1 a fake Messages upstream (bench/upstream.py), the bare pass-through
reference (bench/reference.py) and the bridge (`python -m proxy serve`), measures them
(non-stream throughput and latency, streams, CPU, memory, startup), prints a markdown
report with the targets, and writes the figures as JSON. Every run is bounded in time
and everything it starts is stopped at the end. See bench/README.md.
"""

import argparse
import json
import shlex
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import load
import report
import scaling
import servers
from measure import LEGACY, Bench, derived, memory, nonstream, startup, streams


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[2].replace("\n", " ")
    )
    parser.add_argument("--quick", action="store_true", help="tiny runs: well under a minute")
    parser.add_argument(
        "--loadgen",
        choices=("wrk", "python"),
        default="wrk",
        help="non-stream load generator (streams always use the asyncio one)",
    )
    parser.add_argument("--duration", type=float, help="seconds per measured run [5; quick 0.4]")
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up before each [1; quick 0.2]"
    )
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="upstream delay before answering"
    )
    parser.add_argument(
        "--short-deltas", type=int, default=10, help="text deltas of a short answer"
    )
    parser.add_argument("--long-deltas", type=int, default=500, help="text deltas of a long answer")
    parser.add_argument("--stream-concurrency", type=int, default=32, help="for events/s [32]")
    parser.add_argument(
        "--event-gap-ms", type=float, help="paced streams: ms between events [2; quick 1]"
    )
    parser.add_argument(
        "--streams", type=int, help="open streams for the memory test [1000; quick 100]"
    )
    parser.add_argument("--starts", type=int, help="bridge starts timed [5; quick 2]")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server under test to its own CPU",
    )
    parser.add_argument(
        "--bridge-source",
        type=Path,
        metavar="DIR",
        help="run the bridge from DIR/proxy (e.g. `git archive REV proxy | tar -x -C DIR`)",
    )
    parser.add_argument("--json", type=Path, default=servers.BENCH / "results.json", metavar="FILE")
    parser.add_argument(
        "--time-limit", type=float, help="abort after this many seconds [900; quick 120]"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "duration": (5, 0.4),
        "warmup": (1, 0.2),
        "event_gap_ms": (2.0, 1.0),
        "streams": (1000, 100),
        "starts": (5, 2),
        "time_limit": (900, 120),
    }
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    return args


def method(args: argparse.Namespace, b: Bench) -> dict[str, Any]:
    pin = (
        (
            f"servers under test pinned to CPU {b.server_cpus} (taskset -c); upstream, load "
            f"generator and this script on CPU {b.other_cpus}"
        )
        if b.server_cpus
        else "no pinning"
    )
    gen = (
        "wrk -t1 --latency with bench/wrk.lua"
        if args.loadgen == "wrk"
        else "the asyncio client (bench/client.py)"
    )
    summary = (
        f"127.0.0.1 only; closed loops of C connections, {args.warmup} s warm-up then "
        f"{args.duration} s measured per run; non-stream load: {gen}; streams: the asyncio "
        f"client (TTFB = first body byte on the wire, at c=1). Fake upstream answers "
        f"{args.short_deltas} (short) or {args.long_deltas} (long) text deltas after "
        f"{args.delay_ms} ms, the first delta at once and the rest 1 ms later in one write "
        f"(paced: one event every {args.event_gap_ms} ms). Direct and reference get the "
        f"Messages body, the bridge the legacy body {json.dumps(LEGACY)}. "
        f"CPU = utime+stime of the server process from /proc/PID/stat. Memory: fresh bridge, "
        f"VmRSS after 1 request, then with {args.streams} v2 streams held open by the upstream. "
        f"{pin}."
    )
    return {
        "summary": summary,
        "loadgen": args.loadgen,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "delay_ms": args.delay_ms,
        "short_deltas": args.short_deltas,
        "long_deltas": args.long_deltas,
        "stream_concurrency": args.stream_concurrency,
        "event_gap_ms": args.event_gap_ms,
        "streams": args.streams,
        "starts": args.starts,
        "bridge_source": str(args.bridge_source.resolve()) if args.bridge_source else None,
        "server_cpus": b.server_cpus,
        "other_cpus": b.other_cpus,
    }


def benchmark(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        b = Bench(args, stack, logs)
        results: dict[str, Any] = {
            "command": shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": report.machine(),
            "method": method(args, b),
        }
        upstream = b.upstream()
        reference = b.reference(upstream)
        bridge = b.bridge(upstream)
        results["nonstream"] = nonstream(
            b,
            {
                "direct": (upstream, b.messages(upstream.port, "short", stream=False)),
                "reference": (reference, b.messages(reference.port, "short", stream=False)),
                # the reference translating and doing nothing else (bench/reference.py)
                "floor": (reference, b.legacy(reference.port, "short", stream=False)),
                "bridge": (bridge, b.legacy(bridge.port, "short", stream=False)),
            },
        )
        results["streams"] = streams(b, upstream, reference, bridge)
        reference.stop()
        bridge.stop()
        results["workers"] = scaling.workers(b, upstream)  # bench/scaling.py
        results["tracing"] = scaling.tracing(b, upstream)
        results["memory"] = {**memory(b, "bridge"), "reference": memory(b, "reference")}
        results["startup"] = startup(b, upstream)
    derived(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    if args.loadgen == "wrk" and load.wrk_path() is None:
        print(f"bench/run.py: {load.WRK_MISSING}", file=sys.stderr)
        return 2

    def too_long(signum: int, frame: object) -> None:
        raise TimeoutError(f"benchmark stopped after its time limit of {args.time_limit:.0f} s")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(max(1, int(args.time_limit)))
    with tempfile.TemporaryDirectory(prefix="bench-") as logs:
        results = benchmark(args, Path(logs))
    signal.alarm(0)
    print(report.markdown(results) + scaling.markdown(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"JSON written to {args.json}", file=sys.stderr)
    return 0 if results["checks"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
