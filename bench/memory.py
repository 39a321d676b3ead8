"""Peak memory of the bridge for the largest legal request bodies.

    .venv/bin/python bench/memory.py            # every case, about a minute
    .venv/bin/python bench/memory.py --cases prompt,three --env BRIDGE_MAX_INFLIGHT_BYTES=...

Method: each case gets a fresh bridge (`python -m proxy serve`, its defaults but for
`--env`) in front of bench/upstream.py, both on loopback. The bridge serves one small
call first (so its lazy imports and pools are made); its VmRSS then is **idle**. The
case's bodies are then sent (several at once on their own connections when the case
says so) and every answer read whole; the kernel's high-water mark of the bridge's
resident memory (VmHWM in /proc/PID/status: exact, no sampling gap) is **peak**.
**multiple** = (peak - idle) / the bytes of the bodies sent: what one body byte costs
at most. The status of each answer is shown too: a body the bridge refuses (400, 529)
is read and refused, and that costs memory as well.
"""

import argparse
import contextlib
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import servers

MIB = 1024 * 1024
LIMIT = 32 * MIB  # the default max_body_bytes: every body here is legal by size
MODEL = "claude-2.1"
SMALL = {"model": MODEL, "prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 10}


def _dump(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def stops_body() -> bytes:
    """3,000,000 distinct six-character stop sequences (26.7 MB)."""
    stops = [f"{i:06x}" for i in range(3_000_000)]
    return _dump({**SMALL, "stop_sequences": stops})


def prompt_body(size: int = 30_000_000, wide: bool = False) -> bytes:
    """One Human turn of plain text (`wide`: with one emoji, so Python holds the text at
    4 bytes a character), to `size` bytes in all."""
    head, tail = "\n\nHuman: ", "\n\nAssistant:"
    extra = "\U0001f600" if wide else ""
    overhead = len(_dump({**SMALL, "prompt": head + tail + extra}))
    words = "lorem ipsum dolor sit amet " * (size // 27 + 1)
    text = words[: size - overhead - (4 if wide else 0)]
    body = _dump({**SMALL, "prompt": head + extra + text + tail})
    assert len(body) <= LIMIT, len(body)
    return body


def turns_body() -> bytes:
    """700,000 pairs of short turns (27 MB)."""
    prompt = "\n\nHuman: hi there\n\nAssistant: hello" * 700_000 + "\n\nHuman: ok\n\nAssistant:"
    return _dump({**SMALL, "prompt": prompt})


def nested_body() -> bytes:
    """An unknown field holding 10,000,000 empty arrays (30 MB)."""
    return _dump({**SMALL, "junk": [[]] * 10_000_000})


def upload_body() -> bytes:
    """A 30 MB Messages request, sent to the pass-through path /v1/messages."""
    text = "lorem ipsum dolor sit amet " * (30_000_000 // 27)
    messages = [{"role": "user", "content": text}]
    return _dump({"model": "claude-sonnet-4-5", "messages": messages, "max_tokens": 10})


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    path: str
    body: Callable[[], bytes]
    copies: int = 1  # sent at once, each on its own connection


CASES = [
    Case("stops", "3M short stop sequences", "/v1/complete", stops_body),
    Case("prompt", "30 MB prompt", "/v1/complete", prompt_body),
    Case("three", "three 30 MB prompts at once", "/v1/complete", prompt_body, copies=3),
    Case("wide", "30 MB prompt with one emoji", "/v1/complete", lambda: prompt_body(wide=True)),
    Case("turns", "1.4M short turns", "/v1/complete", turns_body),
    Case("nested", "10M empty arrays", "/v1/complete", nested_body),
    Case("upload", "30 MB pass-through upload", "/v1/messages", upload_body),
]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def post(port: int, path: str, body: bytes, out: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {
        "content-type": "application/json",
        "x-api-key": "sk-bench-not-a-key",
        "anthropic-version": "2023-06-01",
    }
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        status = str(response.status)
        if response.status != 200:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                status += " " + json.loads(answer)["error"]["type"]
        out.append(status)
    except OSError as exc:
        out.append(f"failed: {exc}")
    finally:
        connection.close()


def measure(
    case: Case, upstream_port: int, logs: Path, env: dict[str, str], source: Path | None
) -> dict[str, object]:
    body = case.body()
    bridge = servers.bridge(servers.free_port(), upstream_port, None, logs, source)
    bridge.extra_env = env
    bridge.start()
    try:
        bridge.wait_ready()
        warm: list[str] = []
        post(bridge.port, "/v1/complete", _dump(SMALL), warm)
        time.sleep(0.2)
        idle = status_kb(bridge.pid, "VmRSS")
        statuses: list[str] = []
        started = time.perf_counter()
        threads = [
            threading.Thread(target=post, args=(bridge.port, case.path, body, statuses))
            for _ in range(case.copies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        peak = status_kb(bridge.pid, "VmHWM")
        after = status_kb(bridge.pid, "VmRSS")
    finally:
        bridge.stop()
    sent = len(body) * case.copies
    return {
        "case": case.name,
        "what": case.what,
        "body_mb": round(len(body) / 1e6, 1),
        "copies": case.copies,
        "statuses": sorted(statuses),
        "idle_mb": round(idle / 1024, 1),
        "peak_mb": round(peak / 1024, 1),
        "after_mb": round(after / 1024, 1),
        "multiple": round((peak - idle) * 1024 / sent, 2),
        "seconds": round(seconds, 2),
        "warm": warm,
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| case | body | at once | answers | idle RSS | peak RSS | RSS after | (peak-idle)/bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['what']} | {r['body_mb']} MB | {r['copies']} | {', '.join(r['statuses'])} "  # type: ignore[arg-type]
            f"| {r['idle_mb']} MB | {r['peak_mb']} MB | {r['after_mb']} MB | {r['multiple']}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", default=",".join(c.name for c in CASES), help="comma-separated case names"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a bridge setting"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="run the bridge of another checkout (a folder holding its proxy/), e.g. "
        "`git worktree add /tmp/before HEAD~3` to compare",
    )
    args = parser.parse_args(argv)
    chosen = args.cases.split(",")
    unknown = set(chosen) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    env = dict(item.split("=", 1) for item in args.env)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        logs = Path(folder)
        upstream = servers.upstream(servers.free_port(), None, logs).start()
        try:
            upstream.wait_ready()
            for case in CASES:
                if case.name in chosen:
                    rows.append(measure(case, upstream.port, logs, env, args.source))
                    print(f"{case.name}: done", file=sys.stderr)
        finally:
            upstream.stop()
    print(__doc__.split("\n\n", 2)[2].strip())
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
