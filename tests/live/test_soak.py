"""A bounded soak (bench/soak.py): mixed legacy traffic through a real bridge process in
front of the strict fake upstream, every answer checked whole, and the bridge's memory
and file descriptors flat from the end of the warm-up to the end."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DURATION, WARMUP, CONCURRENCY = 16, 4, 8
KINDS = ("whole", "stream", "fail 529", "fail 500", "midstream error", "hang-up")


def test_soak_answers_every_request_right_and_stays_flat(tmp_path: Path) -> None:
    """16 s at 8 concurrent requests (non-stream and stream, v1 and v2, upstream 529s,
    500s and mid-stream errors, clients hanging up mid-stream): every answer is complete
    and exactly right, the bridge logs one line per request with the right status, and
    from the end of the 4 s warm-up to the end its RSS grows by at most 10 %, its
    descriptors other than pooled upstream connections move by at most 2, no client
    connection is left open and at most 8 idle upstream connections stay pooled (each
    read with no request in flight)."""
    out = tmp_path / "soak.json"
    argv = [sys.executable, "bench/soak.py", "--duration", str(DURATION)]
    argv += ["--warmup", str(WARMUP), "--concurrency", str(CONCURRENCY), "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(out.read_text())

    assert r["failures"] == 0, r["failure_examples"]
    assert r["checked"] == r["total"] == sum(sum(c.values()) for c in r["requests"].values())
    assert set(r["requests"]) == set(KINDS)
    for kind, counts in r["requests"].items():  # the mix reached every kind in both formats
        assert counts["v1"] > 0 and counts["v2"] > 0, (kind, counts)

    log = r["log"]
    assert log["lines"] == r["total"], log
    assert log["statuses"] == log["expected_statuses"], log
    assert log["internal_errors"] == 0, log
    assert log["client_disconnected"] <= sum(r["requests"]["hang-up"].values()), log

    warm, end = r["resources"]["after_warmup"], r["resources"]["end"]
    assert end["rss_kb"] <= warm["rss_kb"] * 1.10, r["resources"]
    assert abs(end["other_fds"] - warm["other_fds"]) <= 2, r["resources"]
    assert end["client_conns"] == 0, r["resources"]  # none left open by the bridge
    assert max(warm["upstream_conns"], end["upstream_conns"]) <= CONCURRENCY, r["resources"]
    assert r["pass"] is True
