"""`complete-bridge report` on a generated 1,000,000-line log: wall time and peak RSS
(the target: under 10 s and 256 MB). The log mixes what a fleet writes: complete lines
over 6 routes (canary and shadow arms, pass-through and translate), 2,000 callers,
5 legacy models, adaptations, shadow lines, a config.applied line per 100,000 lines.

    .venv/bin/python bench/report_scale.py [--lines N] [--keep PATH]
"""

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUTES = [
    ("instant", "canary", {"primary": "passthrough", "secondary": "translate"}),
    ("claude-2", "shadow", {"primary": "passthrough", "secondary": "translate"}),
    ("legacy", "passthrough", {"primary": "passthrough"}),
    ("done", "translate", {"primary": "translate"}),
    ("batch", "canary", {"primary": "translate", "secondary": "translate"}),
    ("default", "translate", {"primary": "translate"}),
]
MODELS = ["claude-instant-1.2", "claude-2.1", "claude-2.0", "claude-v1.3", "claude-3-haiku"]


def generate(path: Path, lines: int) -> None:
    rng = random.Random(14)  # noqa: S311 (test data, not secrets)
    callers = [f"{i:012x}" for i in range(2000)]
    applied = {
        "event": "config.applied",
        "level": "info",
        "source": "start",
        "generation": 1,
        "force_mode": None,
        "routes": [
            {
                "name": name,
                "match": "",
                "mode": mode,
                "percent": 10.0,
                "arms": {arm: {"mode": m, "model": "claude-haiku-4-5"} for arm, m in arms.items()},
            }
            for name, mode, arms in ROUTES
        ],
    }
    with path.open("w") as out:
        for i in range(lines):
            month, day = 1 + i * 12 // lines, 1 + i % 28
            stamp = f"2025-{month:02d}-{day:02d}T{i % 24:02d}:00:00.{i % 10**6:06d}Z"
            if i % 100_000 == 0:
                out.write(json.dumps({**applied, "timestamp": stamp}) + "\n")
                continue
            who = rng.randrange(len(callers))  # a caller's app calls one model, on one route
            name, _, arms = ROUTES[who % len(ROUTES)]
            if name == "claude-2" and i % 7 == 0:
                ok = rng.random() > 0.01
                out.write(
                    json.dumps(
                        {
                            "event": "shadow",
                            "timestamp": stamp,
                            "level": "info",
                            "route": name,
                            "caller": callers[who],
                            "status": 200 if ok else 500,
                            "error_type": None if ok else "api_error",
                            "skipped": False,
                            "stop_match": rng.random() > 0.02,
                            "exact_match": False,
                            "normalised_match": rng.random() > 0.5,
                            "similarity": rng.random(),
                            "length_ratio": 0.5 + rng.random(),
                            "duration_ms": rng.uniform(100, 3000),
                        }
                    )
                    + "\n"
                )
                continue
            arm = "secondary" if "secondary" in arms and rng.random() < 0.1 else "primary"
            mode = arms[arm]
            failed = rng.random() < 0.01
            out.write(
                json.dumps(
                    {
                        "event": "complete",
                        "timestamp": stamp,
                        "level": "info",
                        "route": name,
                        "arm": arm,
                        "mode": mode,
                        "caller": callers[who],
                        "legacy_model": MODELS[who % len(MODELS)],
                        "format": "v1",
                        "stream": i % 3 == 0,
                        "upstream_model": "claude-haiku-4-5" if mode == "translate" else None,
                        "status": 529 if failed else 200,
                        "error_type": "overloaded_error" if failed else None,
                        "input_tokens": rng.randint(10, 4000) if mode == "translate" else None,
                        "output_tokens": rng.randint(1, 1000) if mode == "translate" else None,
                        "adaptations": ["local_stop"] if i % 11 == 0 else [],
                        "ttfb_ms": rng.uniform(50, 800),
                        "duration_ms": rng.uniform(100, 9000),
                        "client_disconnected": False,
                        # the rest of a real line (the report does not read them)
                        "call_id": f"{i:016x}",
                        "upstream_status": 200,
                        "request_id": f"req_{i:024x}",
                        "turns": 1,
                        "system": False,
                        "prefill": True,
                        "upstream_stop_reason": "end_turn",
                        "stop_reason": "stop_sequence",
                        "stop": "\\n\\nHuman:",
                    }
                )
                + "\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the log here (and keep it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = args.keep or Path(tmp) / "bridge.log"
        generate(log, args.lines)
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 (our own argv)
            [sys.executable, "-m", "proxy", "report", str(log), "--json"],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if done.returncode != 0:
            sys.exit(done.stderr)
        report = json.loads(done.stdout)
        print(
            f"{report['lines']:,} lines ({log.stat().st_size / 1e6:.0f} MB): {seconds:.1f} s, "
            f"peak RSS {peak_mb:.0f} MB; {len(report['decisions'])} decisions, "
            f"{report['totals']['callers']:,} callers"
        )


if __name__ == "__main__":
    main()
