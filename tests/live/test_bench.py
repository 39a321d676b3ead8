"""The benchmark (bench/run.py) runs end to end in its quick mode and reports every figure.

Timings are never asserted here (they depend on the machine); what is asserted is that
every measurement is there as a number and that every answer was checked and right.
"""

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = ("1", "32", "256")
LENGTHS = ("short", "long")
FORMATS = ("v1", "v2")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _measurements(r: dict[str, Any]) -> dict[str, Any]:
    """Every figure the benchmark promises, by a readable path."""
    out: dict[str, Any] = {}
    for target, levels in (
        ("direct", CONCURRENCY),
        ("reference", CONCURRENCY),
        ("floor", CONCURRENCY),
        ("bridge", (*CONCURRENCY, "8")),
    ):
        for c in levels:
            run = r["nonstream"][target][c]
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request"):
                out[f"nonstream.{target}.c{c}.{key}"] = run.get(key)
    for target in ("bridge", "reference"):
        for q in ("p50", "p99"):
            out[f"added_latency.{target}.{q}"] = r["added_latency_ms"][target][q]
    for c in CONCURRENCY:
        out[f"cpu_ratio.c{c}"] = r["cpu_ratio_bridge_to_reference"][c]
        out[f"cpu_ratio.floor.c{c}"] = r["cpu_ratio_floor_to_reference"][c]
    out["cpu_growth_8_to_256"] = r["cpu_growth_8_to_256"]
    streams = r["streams"]
    for length in LENGTHS:
        for target in ("direct", "reference"):
            out[f"ttfb.{target}.{length}"] = streams["ttfb"][target][length].get("ttfb_p50_ms")
        for fmt in FORMATS:
            out[f"ttfb.bridge.{fmt}.{length}"] = streams["ttfb"]["bridge"][fmt][length].get(
                "ttfb_p50_ms"
            )
            out[f"added_ttfb.{fmt}.{length}"] = streams["added_ttfb_ms"][fmt][length]
            for kind in (length, f"{length}_paced") if length == "long" else (length,):
                run = streams["events"]["bridge"][fmt][kind]
                out[f"events_per_core.bridge.{fmt}.{kind}"] = run.get("events_per_cpu_s")
    for kind in ("long", "long_paced"):
        run = streams["events"]["reference"][kind]
        out[f"events_per_core.reference.{kind}"] = run.get("events_per_cpu_s")
    for key in ("rss_idle_mb", "rss_open_mb", "kb_per_stream"):
        out[f"memory.{key}"] = r["memory"][key]
        out[f"memory.reference.{key}"] = r["memory"]["reference"][key]
    out["startup.median_s"] = r["startup"]["median_s"]
    for t in r["targets"]:
        out[f"target.{t['name']}"] = t["value"]
    return out


def _translating_runs(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs whose answers are translated: the bridge's, and the floor's."""
    runs = [*r["nonstream"]["bridge"].values(), *r["nonstream"]["floor"].values()]
    for group in ("ttfb", "events"):
        for fmt in FORMATS:
            runs += r["streams"][group]["bridge"][fmt].values()
    return runs


def test_quick_benchmark_reports_every_measurement(tmp_path: Path) -> None:
    """`bench/run.py --quick --loadgen python` (no wrk needed) writes JSON with every
    measurement as a number, all nine targets judged, and every bridge answer checked
    complete and right, streams included."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--loadgen", "python", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "## Targets" in done.stdout
    r = json.loads(out.read_text())

    figures = _measurements(r)
    missing = {path: value for path, value in figures.items() if not _number(value)}
    assert not missing, missing
    assert len(r["targets"]) == 9
    assert all(isinstance(t["pass"], bool) for t in r["targets"])
    assert len(r["startup"]["runs_s"]) == 2

    for run in _translating_runs(r):
        assert run["requests"] > 0, run
        assert run["checked"] == run["requests"], run
        assert run["bad"] == 0 and run["errors"] == 0, run
    for workers in ("1", "2"):  # the workers rows (bench/scaling.py), every answer checked
        run = r["workers"][workers]
        assert run["requests"] > 0 and run["checked"] == run["requests"], run
        assert run["bad"] == 0 and run["errors"] == 0 and _number(run["cpu_us_per_request"])
    assert "| bridge workers (every CPU, c=32, short) |" in done.stdout
    for state in ("off", "on"):  # the tracing rows
        run = r["tracing"][state]
        assert run["requests"] > 0 and run["checked"] == run["requests"], run
    assert "| on (OTLP/HTTP to a local sink) |" in done.stdout
    assert r["tracing"]["off"]["otlp_exports"] == 0 < r["tracing"]["on"]["otlp_exports"]
    memory = r["memory"]
    assert memory["all_open_at_once"] is True, memory
    assert memory["complete"] == memory["streams"] == 100, memory
    assert r["checks"]["pass"] is True, r["checks"]
