"""The benchmark's workers and tracing rows, non-stream short answers at 32 connections.

Workers: the bridge with `--workers 1` and `--workers 2`, in the same run, each allowed
every CPU of the machine (the other rows pin the server to one): calls per second, and
CPU per call summed over the supervisor and its workers (/proc: every process of the
tree). Tracing: the bridge pinned as the other rows, with no OTEL_* variable (off: the
default) and with traces exported over OTLP/HTTP to a sink in this process."""

import http.server
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import servers
from measure import Bench

WORKERS = (1, 2)
CONNECTIONS = 32


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and every process descended from it (live ones)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended meanwhile
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, grown = {pid}, True
    while grown:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    total = 0.0
    for member in tree:
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / servers.TICK
    return total


class Tree(servers.Server):
    """A server whose CPU is its whole process tree's (a supervisor and its workers)."""

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)


def workers(b: Bench, upstream: servers.Server) -> dict[str, Any]:
    """Calls/s and CPU µs per call of the bridge at each of WORKERS."""
    print("workers", file=sys.stderr, flush=True)
    every_cpu = ",".join(map(str, sorted(os.sched_getaffinity(0) | _server_cpus(b))))
    out: dict[str, Any] = {}
    for count in WORKERS:
        port = servers.free_port()
        plain = servers.bridge(port, upstream.port, every_cpu, b.logs, b.args.bridge_source)
        bridge = Tree(plain.name, [*plain.argv, "--workers", str(count)], port, None, b.logs)
        bridge.cwd = plain.cwd
        b.start(bridge)
        spec = b.legacy(port, "short", stream=False)
        out[str(count)] = b.run(f"bridge workers={count}", spec, bridge, CONNECTIONS).summary()
        bridge.stop()
    return out


def tracing(b: Bench, upstream: servers.Server) -> dict[str, Any]:
    """Calls/s and CPU µs per call of the bridge with tracing off and on."""
    print("tracing", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    with _sink() as (sink_url, exports):
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        for label, env in (("off", {}), ("on", on)):
            port = servers.free_port()
            source = b.args.bridge_source
            bridge = servers.bridge(port, upstream.port, b.server_cpus, b.logs, source)
            bridge.extra_env = env
            b.start(bridge)
            spec = b.legacy(port, "short", stream=False)
            out[label] = b.run(f"bridge tracing {label}", spec, bridge, CONNECTIONS).summary()
            bridge.stop()  # which exports what it still holds
            out[label]["otlp_exports"] = len(exports)
    return out


@contextmanager
def _sink() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP endpoint that takes every export and keeps only its size."""
    exports: list[int] = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            exports.append(len(self.rfile.read(int(self.headers.get("content-length", 0)))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", exports
    finally:
        server.shutdown()
        server.server_close()


def _server_cpus(b: Bench) -> set[int]:
    return {int(cpu) for cpu in b.server_cpus.split(",")} if b.server_cpus else set()


def markdown(results: dict[str, Any]) -> str:
    rows = results.get("workers")
    if not rows:
        return ""
    one = rows["1"]["rps"]
    lines = [
        *_tracing_lines(results.get("tracing") or {}),
        "",
        f"| bridge workers (every CPU, c={CONNECTIONS}, short) | calls/s | CPU µs per call |"
        " calls/s vs 1 worker |",
        "|---|---|---|---|",
    ]
    for count, row in rows.items():
        ratio = row["rps"] / one if one else 0.0
        cpu = row.get("cpu_us_per_request", 0.0)
        lines.append(f"| {count} | {row['rps']:,.0f} | {cpu:,.0f} | {ratio:.2f}x |")
    return "\n".join(lines)


def _tracing_lines(rows: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        f"| bridge tracing (pinned, c={CONNECTIONS}, short) | calls/s | CPU µs per call |",
        "|---|---|---|",
    ]
    for label, row in rows.items():
        what = "off (no OTEL_*)" if label == "off" else "on (OTLP/HTTP to a local sink)"
        lines.append(f"| {what} | {row['rps']:,.0f} | {row.get('cpu_us_per_request', 0.0):,.0f} |")
    return lines
