"""What the benchmark prints: the machine, the method, the figures, the targets."""

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from servers import ROOT

PACKAGES = (
    "httpx", "uvicorn", "starlette", "structlog", "orjson", "aiohttp", "uvloop",
    "httptools",
)  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    done = subprocess.run(  # noqa: S603 (read-only git, our own argv)
        [git, "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        "?",
    )
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True)  # noqa: S603 (our own argv)
        wrk_version = (done.stdout + done.stderr).split(" Copyright")[0].strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(),
        "packages": {name: _version(name) for name in PACKAGES},
        "uvloop": importlib.util.find_spec("uvloop") is not None,
        "httptools": importlib.util.find_spec("httptools") is not None,
        "wrk": wrk_version,
        "load_average": os.getloadavg()[0],
        "bridge_commit": _git("rev-parse", "--short", "HEAD"),
        "bridge_uncommitted_changes": bool(_git("status", "--porcelain", "--", "proxy")),
    }


# ---------------------------------------------------------------- targets


def target(name: str, value: float, op: str, limit: float, unit: str) -> dict[str, Any]:
    passed = value <= limit if op == "<=" else value >= limit
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit, "pass": passed}


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    added, streams = r["added_latency_ms"]["bridge"], r["streams"]
    bridge_events = streams["events"]["bridge"]
    long_rates = [bridge_events[fmt]["long_paced"]["events_per_cpu_s"] for fmt in ("v1", "v2")]
    added_ttfb = [v for fmt in streams["added_ttfb_ms"].values() for v in fmt.values()]
    memory = r["memory"]
    return [
        target("added latency, c=1, p50 (bridge - direct)", added["p50"], "<=", 1, "ms"),
        target("added latency, c=1, p99 (bridge - direct)", added["p99"], "<=", 5, "ms"),
        target(
            "CPU per request, bridge / reference (worst of c=1, 32, 256)",
            max(r["cpu_ratio_bridge_to_reference"].values()),
            "<=",
            1.2,
            "x",
        ),
        target("added TTFB p50, worst of v1/v2 x short/long", max(added_ttfb), "<=", 2, "ms"),
        target(
            "translated events/s per core, long paced answers (worst of v1/v2)",
            min(long_rates),
            ">=",
            50_000,
            "events/s",
        ),
        target(
            "CPU/request growth, 8 -> 256 connections", r["cpu_growth_8_to_256"], "<=", 1.2, "x"
        ),
        target("RSS idle (startup + 1 request)", memory["rss_idle_mb"], "<=", 60, "MB"),
        target("RSS per open stream", memory["kb_per_stream"], "<=", 30, "KB"),
        target(
            "ready: start to first 200 on /healthz (median)", r["startup"]["median_s"], "<=", 1, "s"
        ),
    ]


# ---------------------------------------------------------------- markdown


def _n(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _pct(r: dict[str, Any], key: str) -> str:
    share = r.get("interference", {}).get(key)
    return "-" if share is None else f"{100 * share:.1f}%"


def _checked(*runs: dict[str, Any] | None) -> str:
    done = [run for run in runs if run]
    return f"{sum(x['checked'] for x in done)}/{sum(x['requests'] for x in done)}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(r: dict[str, Any]) -> str:
    m, method = r["machine"], r["method"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    loadgen = f"wrk ({m['wrk']})" if method["loadgen"] == "wrk" else "python (bench/client.py)"
    dirty = " + uncommitted changes" if m["bridge_uncommitted_changes"] else ""
    if method["bridge_source"]:  # another version of the bridge than this checkout's
        dirty = f" (but the bridge ran from {method['bridge_source']})"
    out = [
        "# complete-bridge benchmark",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['python']}, Linux {m['kernel']}; "
        f"uvloop {'installed' if m['uvloop'] else 'not installed'}, httptools "
        f"{'installed' if m['httptools'] else 'not installed'}; {pkgs}; "
        f"load generator: {loadgen}; bridge at {m['bridge_commit']}{dirty}; load average "
        f"{m['load_average']:.2f} at the start (other processes add noise).",
        "",
        f"Method: {method['summary']}",
        "",
        "## Non-streaming (closed loop, every answer checked)",
        "",
    ]
    rows = []
    for name, runs in r["nonstream"].items():
        for c, run in runs.items():
            rows.append(
                [
                    name,
                    c,
                    _n(run["rps"], 0),
                    _n(run["p50_ms"]),
                    _n(run["p99_ms"]),
                    _n(run["cpu_us_per_request"], 0),
                    f"{100 * run['interference']:.1f}" if "interference" in run else "-",
                    f"{run['checked']}/{run['requests']}",
                    str(run["bad"] + run["errors"]),
                ]
            )
    out += _table(
        [
            "target",
            "conc.",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "others %",
            "checked",
            "wrong",
        ],
        rows,
    )
    ratios = ", ".join(f"c={c}: {_n(v)}x" for c, v in r["cpu_ratio_bridge_to_reference"].items())
    floor = ", ".join(f"c={c}: {_n(v)}x" for c, v in r["cpu_ratio_floor_to_reference"].items())
    out += [
        "",
        "CPU µs/req is the server process's own (direct: the fake upstream's). others %: "
        "the share of the server's CPU that other processes and the hypervisor took meanwhile "
        f"(all runs: median {_pct(r, 'median')}, max {_pct(r, 'max')}); above a few % the "
        "figures are noisy.",
        f"Added latency at c=1: bridge p50 +{_n(r['added_latency_ms']['bridge']['p50'])} ms, "
        f"p99 +{_n(r['added_latency_ms']['bridge']['p99'])} ms; reference p50 "
        f"+{_n(r['added_latency_ms']['reference']['p50'])} ms, p99 "
        f"+{_n(r['added_latency_ms']['reference']['p99'])} ms. "
        f"CPU per request, bridge / reference: {ratios}; floor (the reference translating "
        f"and doing nothing else: no log line, metrics, routes, limits, timeouts) / "
        f"reference: {floor}. "
        f"Bridge CPU/request at 256 / at 8 connections: {_n(r['cpu_growth_8_to_256'])}x.",
        "",
        "## Streaming",
        "",
    ]
    streams, rows = r["streams"], []
    for name in ("direct", "reference"):
        for length, run in streams["ttfb"][name].items():
            ttfb = [_n(run["ttfb_p50_ms"]), _n(run["ttfb_p99_ms"])]
            rows.append([name, "messages", length, *ttfb, "-", "-", "-", _checked(run)])
    bridge_events, reference_events = streams["events"]["bridge"], streams["events"]["reference"]
    for fmt, lengths in streams["ttfb"]["bridge"].items():
        for length, run in lengths.items():
            busy, paced = bridge_events[fmt][length], bridge_events[fmt].get(f"{length}_paced")
            ttfb = [_n(run["ttfb_p50_ms"]), _n(run["ttfb_p99_ms"])]
            added = _n(streams["added_ttfb_ms"][fmt][length])
            rates = [_n(x["events_per_cpu_s"], 0) if x else "-" for x in (busy, paced)]
            rows.append(["bridge", fmt, length, *ttfb, added, *rates, _checked(run, busy, paced)])
    ref = [reference_events["long"], reference_events["long_paced"]]
    rates = [_n(x["events_per_cpu_s"], 0) for x in ref]
    rows.append(["reference", "messages", "long", "-", "-", "-", *rates, _checked(*ref)])
    header = ["target", "format", "answer", "TTFB p50 ms", "TTFB p99 ms", "added TTFB p50 ms"]
    out += _table([*header, "events/s/core", "paced events/s/core", "checked"], rows)
    mem, start = r["memory"], r["startup"]
    out += [
        "",
        "TTFB at c=1. events/s/core = upstream events translated (or relayed) / the "
        f"server's CPU seconds, at c={method['stream_concurrency']}: with each answer's rest "
        "in one upstream write (the translation's best case), and paced, one upstream "
        f"write per event every {method['event_gap_ms']} ms (as a model streams: a read "
        "and a write per event).",
        "",
        "## Memory and startup",
        "",
        *(
            f"- {name.capitalize()} RSS idle {_n(m['rss_idle_mb'])} MB; with {m['streams']} open "
            f"streams {_n(m['rss_open_mb'])} MB: {_n(m['kb_per_stream'])} KB per stream. All "
            f"open at once: {m['all_open_at_once']}; finished complete and right: "
            f"{m['complete']}/{m['streams']} in {_n(m['finish_s'])} s after release "
            f"(late {m['late']})."
            for name, m in (("bridge", mem), ("reference", mem["reference"]))
        ),
        f"- Ready (start to first 200 on /healthz): median {_n(start['median_s'], 3)} s of "
        f"{len(start['runs_s'])} starts ({', '.join(_n(s, 3) for s in start['runs_s'])}).",
        "",
        "## Targets",
        "",
    ]
    rows = [
        [
            t["name"],
            f"{_n(t['value'])} {t['unit']}",
            f"{t['op']} {_n(t['limit'])} {t['unit']}",
            "pass" if t["pass"] else "**FAIL**",
        ]
        for t in r["targets"]
    ]
    checks = r["checks"]
    rows.append(
        [
            "every answer checked and right",
            f"{checks['checked']}/{checks['requests']}, {checks['wrong']} wrong",
            "all",
            "pass" if checks["pass"] else "**FAIL**",
        ]
    )
    out += _table(["target", "measured", "goal", ""], rows)
    return "\n".join(out) + "\n"
