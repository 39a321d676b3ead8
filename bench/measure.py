"""The measurements: the processes, the requests, and each phase of the benchmark.

Phases: non-stream runs, streams (TTFB, events per CPU second, batched and paced), memory
with many open streams, startup. `derived` then computes the differences and ratios,
all within one run, and judges the targets.
"""

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import checks
import load
import report
import servers
from load import Run, Spec
from upstream import LONG_MAX_TOKENS, Answer, answer

LEGACY = {
    "model": "claude-2.1",
    "prompt": "\n\nHuman: hi\n\nAssistant:",
    "max_tokens_to_sample": 100,
}
MESSAGES = {
    "model": "claude-sonnet-4-5",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 100,
}
MAX_TOKENS = {"short": 100, "long": 2 * LONG_MAX_TOKENS}  # the upstream answers long from 500
BASE_HEADERS = {"content-type": "application/json", "x-api-key": "sk-bench-not-a-key"}
V2 = {"anthropic-version": "2023-06-01"}
CONCURRENCY = (1, 32, 256)
LENGTHS = ("short", "long")
FORMATS = ("v1", "v2")


class Bench:
    """The options, the processes, the expected answers, and how to load a target."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack, logs: Path) -> None:
        self.args, self.stack, self.logs = args, stack, logs
        self.answers: dict[str, Answer] = {
            "short": answer(args.short_deltas),
            "long": answer(args.long_deltas),
        }
        cpus = sorted(os.sched_getaffinity(0))
        if args.pin and len(cpus) >= 2:  # the server under test alone on the last CPU
            self.server_cpus = str(cpus[-1])
            self.other_cpus = ",".join(map(str, cpus[:-1]))
            os.sched_setaffinity(0, set(cpus[:-1]))  # this client, and wrk, which inherits it
        else:
            self.server_cpus = self.other_cpus = ""
        self.meter_cpus = {int(self.server_cpus)} if self.server_cpus else set(cpus)

    def start(self, server: servers.Server) -> servers.Server:
        self.stack.callback(server.stop)
        server.start().wait_ready()
        return server

    def upstream(self, *extra: str) -> servers.Server:
        port = servers.free_port()
        delay = ["--delay-ms", str(self.args.delay_ms)]
        deltas = [
            "--short-deltas",
            str(self.args.short_deltas),
            "--long-deltas",
            str(self.args.long_deltas),
        ]
        return self.start(
            servers.upstream(port, self.other_cpus, self.logs, *delay, *deltas, *extra)
        )

    def reference(self, upstream: servers.Server) -> servers.Server:
        port = servers.free_port()
        return self.start(servers.reference(port, upstream.port, self.server_cpus, self.logs))

    def bridge(self, upstream: servers.Server) -> servers.Server:
        port, source = servers.free_port(), self.args.bridge_source
        return self.start(servers.bridge(port, upstream.port, self.server_cpus, self.logs, source))

    def messages(self, port: int, length: str, stream: bool) -> Spec:
        """A Messages request (direct and reference); the answer must be the upstream's bytes."""
        body = {**MESSAGES, "max_tokens": MAX_TOKENS[length]} | ({"stream": True} if stream else {})
        a = self.answers[length]
        check = checks.exact(a.sse, len(a.events)) if stream else checks.exact(a.body, 0)
        expect = () if stream else (a.body.decode(),)
        url = f"http://127.0.0.1:{port}/v1/messages"
        return Spec(url, json.dumps(body).encode(), {**BASE_HEADERS, **V2}, check, expect)

    def legacy(self, port: int, length: str, stream: bool, fmt: str = "v2") -> Spec:
        """The legacy request to the bridge; the answer must be the translated completion."""
        body = {**LEGACY, "max_tokens_to_sample": MAX_TOKENS[length]} | (
            {"stream": True} if stream else {}
        )
        text, events = self.answers[length].text, len(self.answers[length].events)
        check = (
            (checks.v1_stream if fmt == "v1" else checks.v2_stream)(text, events)
            if stream
            else checks.completion(text)
        )
        expect = (json.dumps(" " + text), '"stop_sequence"')
        headers = {**BASE_HEADERS, **(V2 if fmt == "v2" else {})}
        url = f"http://127.0.0.1:{port}/v1/complete"
        return Spec(url, json.dumps(body).encode(), headers, check, expect)

    def run(
        self, label: str, spec: Spec, server: servers.Server, concurrency: int, stream: bool = False
    ) -> Run:
        args = self.args
        meter = servers.Meter(server, self.meter_cpus)
        if args.loadgen == "wrk" and not stream:
            result = load.wrk_run(spec, concurrency, args.duration, args.warmup, meter, self.logs)
        else:
            result = load.python_run(spec, concurrency, args.duration, args.warmup, meter)
        if self.server_cpus and server.name != "upstream":
            result.interference = meter.interference()
        s = result.summary()
        extra = f" ttfb p50 {s['ttfb_p50_ms']:.2f} ms" if stream else ""
        extra += f" {s['events_per_cpu_s']:,.0f} events/cpu-s" if s.get("events_per_cpu_s") else ""
        print(
            f"  {label} c={concurrency}: {s['rps']:,.0f} req/s p50 {s['p50_ms']:.2f} ms "
            f"p99 {s['p99_ms']:.2f} ms {s.get('cpu_us_per_request', 0):,.0f} cpu-µs/req"
            f"{extra}; wrong {result.bad + result.errors}",
            file=sys.stderr,
            flush=True,
        )
        return result


def nonstream(b: Bench, targets: dict[str, tuple[servers.Server, Spec]]) -> dict[str, Any]:
    print("non-streaming", file=sys.stderr)
    out: dict[str, Any] = {}
    for name, (server, spec) in targets.items():
        levels = sorted({*CONCURRENCY, 8}) if name == "bridge" else CONCURRENCY
        out[name] = {str(c): b.run(name, spec, server, c).summary() for c in levels}
    return out


def streams(
    b: Bench, upstream: servers.Server, reference: servers.Server, bridge: servers.Server
) -> dict[str, Any]:
    """TTFB at c=1, and events per CPU second at --stream-concurrency: with each answer's
    rest in one upstream write, then paced (a model's pace: a read and a write per event)."""
    print("streaming", file=sys.stderr)
    c = b.args.stream_concurrency
    ttfb: dict[str, Any] = {"direct": {}, "reference": {}, "bridge": {f: {} for f in FORMATS}}
    events: dict[str, Any] = {"reference": {}, "bridge": {f: {} for f in FORMATS}}
    for length in LENGTHS:
        for name, server in (("direct", upstream), ("reference", reference)):
            spec = b.messages(server.port, length, stream=True)
            ttfb[name][length] = b.run(f"{name} {length}", spec, server, 1, stream=True).summary()
        for fmt in FORMATS:
            spec, label = (
                b.legacy(bridge.port, length, stream=True, fmt=fmt),
                f"bridge {fmt} {length}",
            )
            ttfb["bridge"][fmt][length] = b.run(label, spec, bridge, 1, stream=True).summary()
            events["bridge"][fmt][length] = b.run(label, spec, bridge, c, stream=True).summary()
    spec = b.messages(reference.port, "long", stream=True)
    events["reference"]["long"] = b.run("reference long", spec, reference, c, stream=True).summary()
    with ExitStack() as stack:  # the same, paced
        paced = b.upstream("--event-gap-ms", str(b.args.event_gap_ms))
        paced_reference, paced_bridge = b.reference(paced), b.bridge(paced)
        for server in (paced, paced_reference, paced_bridge):
            stack.callback(server.stop)
        spec = b.messages(paced_reference.port, "long", stream=True)
        run = b.run("reference long paced", spec, paced_reference, c, stream=True)
        events["reference"]["long_paced"] = run.summary()
        for fmt in FORMATS:
            spec = b.legacy(paced_bridge.port, "long", stream=True, fmt=fmt)
            run = b.run(f"bridge {fmt} long paced", spec, paced_bridge, c, stream=True)
            events["bridge"][fmt]["long_paced"] = run.summary()
    added = {
        fmt: {
            n: ttfb["bridge"][fmt][n]["ttfb_p50_ms"] - ttfb["direct"][n]["ttfb_p50_ms"]
            for n in LENGTHS
        }
        for fmt in FORMATS
    }
    return {"ttfb": ttfb, "events": events, "added_ttfb_ms": added}


def memory(b: Bench, kind: str) -> dict[str, Any]:
    """A fresh server (bridge or reference): RSS after one request, then with N v2 (or
    Messages) streams held open by the upstream, which then lets them all finish."""
    print(f"memory: {kind}", file=sys.stderr)
    with ExitStack() as stack:
        upstream = b.upstream("--hold")
        server = b.bridge(upstream) if kind == "bridge" else b.reference(upstream)
        stack.callback(upstream.stop)
        stack.callback(server.stop)
        if kind == "bridge":
            once = b.legacy(server.port, "short", stream=False)
            spec = b.legacy(server.port, "short", stream=True, fmt="v2")
        else:
            once = b.messages(server.port, "short", stream=False)
            spec = b.messages(server.port, "short", stream=True)
        if not load.run_async(load.once(once)):
            raise RuntimeError(
                f"{kind} did not answer its first request right:\n{server.log_tail()}"
            )
        time.sleep(0.5)
        idle_kb, peak_kb = server.rss_kb(), 0

        def when_open() -> None:
            nonlocal peak_kb
            for _ in range(3):
                peak_kb = max(peak_kb, server.rss_kb())
                time.sleep(0.05)
            if servers.http_status(upstream.port, "/release", "POST") != 200:
                raise RuntimeError("the upstream did not release the held streams")

        count = b.args.streams
        result = load.run_async(load.open_streams(spec, count, when_open, 60, 30))
    print(
        f"  idle {idle_kb / 1024:.1f} MB, open {peak_kb / 1024:.1f} MB, {result}", file=sys.stderr
    )
    return {
        **result,
        "rss_idle_mb": idle_kb / 1024,
        "rss_open_mb": peak_kb / 1024,
        "kb_per_stream": (peak_kb - idle_kb) / count,
    }


def startup(b: Bench, upstream: servers.Server) -> dict[str, Any]:
    print("startup", file=sys.stderr)
    runs = []
    for _ in range(b.args.starts):
        port, source = servers.free_port(), b.args.bridge_source
        server = servers.bridge(port, upstream.port, b.server_cpus, b.logs, source)
        started = time.perf_counter()
        try:
            server.start().wait_ready()
            runs.append(time.perf_counter() - started)
        finally:
            server.stop()
    print(f"  {', '.join(f'{s:.3f}' for s in runs)} s", file=sys.stderr)
    return {"runs_s": runs, "median_s": statistics.median(runs)}


def derived(r: dict[str, Any]) -> None:
    """Figures computed from the runs: differences and ratios, all within this one run."""
    ns = r["nonstream"]
    r["added_latency_ms"] = {
        name: {q: ns[name]["1"][f"{q}_ms"] - ns["direct"]["1"][f"{q}_ms"] for q in ("p50", "p99")}
        for name in ("bridge", "reference")
    }
    r["cpu_ratio_bridge_to_reference"] = {
        str(c): ns["bridge"][str(c)]["cpu_us_per_request"]
        / ns["reference"][str(c)]["cpu_us_per_request"]
        for c in CONCURRENCY
    }
    r["cpu_ratio_floor_to_reference"] = {
        str(c): ns["floor"][str(c)]["cpu_us_per_request"]
        / ns["reference"][str(c)]["cpu_us_per_request"]
        for c in CONCURRENCY
    }
    r["cpu_growth_8_to_256"] = (
        ns["bridge"]["256"]["cpu_us_per_request"] / ns["bridge"]["8"]["cpu_us_per_request"]
    )
    runs = [run for t in ns.values() for run in t.values()]
    for group in (r["streams"]["ttfb"]["direct"], r["streams"]["ttfb"]["reference"]):
        runs += group.values()
    streams = r["streams"]
    for group in (*streams["ttfb"]["bridge"].values(), *streams["events"]["bridge"].values()):
        runs += group.values()
    runs += streams["events"]["reference"].values()
    held = [r["memory"], r["memory"]["reference"]]
    requests = sum(x["requests"] for x in runs) + sum(m["streams"] for m in held)
    checked = sum(x["checked"] for x in runs) + sum(m["complete"] + m["bad"] for m in held)
    wrong = sum(x["bad"] + x["errors"] for x in runs) + sum(m["bad"] + m["late"] for m in held)
    r["checks"] = {
        "requests": requests,
        "checked": checked,
        "wrong": wrong,
        "pass": checked == requests
        and wrong == 0
        and all(m["complete"] == m["streams"] and m["all_open_at_once"] for m in held),
    }
    shares = [x["interference"] for x in runs if "interference" in x]
    if shares:
        r["interference"] = {"median": statistics.median(shares), "max": max(shares)}
    r["targets"] = report.targets(r)
