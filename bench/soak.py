"""Soak: mixed legacy traffic through a real bridge process, every answer checked.

    .venv/bin/python bench/soak.py [--duration SECONDS] [--concurrency N] [--json FILE]

Starts on 127.0.0.1 the strict fake Messages API (tests/fakes/upstream.py, on uvicorn in
this process) and the bridge (`python -m proxy serve`, its defaults, JSON log to a file),
then runs N closed-loop workers for --duration seconds: non-stream and stream answers in
both legacy formats, upstream faults (FAIL 529, FAIL 500, MIDSTREAM_ERROR) and clients
that hang up mid-stream. Every answer is checked whole against the fake's deterministic
reply. The bridge's RSS and open file descriptors are read at the start, after the
warm-up and at the end (each time with no request in flight and the clients' connections
closed). Prints a table, writes the figures as JSON, exits 0 when every answer was right,
the bridge logged one line per request, and RSS and fds stayed flat.
"""

import argparse
import asyncio
import functools
import itertools
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fake upstream and the process helper live in tests/

from tests.fakes.servers import bridge_process, serving  # noqa: E402
from tests.fakes.upstream import FakeUpstream  # noqa: E402

V2 = "2023-06-01"
FORMATS = ("v1", "v2")
# kind -> weight in the mix; every request also picks its format, v1 or v2, at random
KINDS = {
    "whole": 3,  # non-stream, answered
    "stream": 3,  # stream, answered
    "fail 529": 1,  # upstream 529 before the first byte, stream or not
    "fail 500": 1,  # upstream 500 before the first byte, stream or not
    "midstream error": 1,  # stream, upstream overloaded_error after two text deltas
    "hang-up": 1,  # stream, the client hangs up after the first completion event
}
WORDS = ["the", "sky", "is", "blue", "because", "air", "scatters", "waves", "café", "日本"]
RSS_TOLERANCE = 0.10  # end vs after warm-up, as a fraction of the latter
FD_TOLERANCE = 2  # end vs after warm-up, descriptors either way (pooled upstream
# connections aside: at most --concurrency of them, however many requests went by)
REQUEST_TIMEOUT = 30.0
KEPT_FAILURES = 20


@dataclass
class Tally:
    """What the workers did: requests by kind and format, and what went wrong."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, fmt: str, problem: str | None) -> None:
        self.requests[kind, fmt] += 1
        if problem is not None:
            self.failures[kind, fmt] += 1
            if len(self.examples) < KEPT_FAILURES:
                self.examples.append({"kind": kind, "format": fmt, "problem": problem[:500]})


# -- what each answer must be ---------------------------------------------------------


def completion_fields(fmt: str, event_id: str, text: str, final: bool) -> dict[str, Any]:
    """A legacy completion body or stream event, as SPEC.md says it must be."""
    body: dict[str, Any] = {
        "type": "completion",
        "id": event_id,
        "completion": text,
        "stop_reason": "stop_sequence" if final else None,
        "model": "claude-2.1",
        "stop": "\n\nHuman:" if final else None,
        "log_id": event_id,
    }
    if fmt == "v1":
        body.update(truncated=False, exception=None)
    return body


def check_id(response: httpx.Response, body: dict[str, Any]) -> str | None:
    """The completion id comes from this very upstream call: `compl_fakeN` with the N of
    the fake's `req_fakeN` request-id."""
    request_id = response.headers.get("request-id", "")
    match = re.fullmatch(r"req_fake(\d{6})", request_id)
    if match is None or body.get("id") != f"compl_fake{match[1]}":
        return f"id {body.get('id')!r} does not match request-id {request_id!r}"
    return None


def check_whole(response: httpx.Response, fmt: str, expected: str) -> str | None:
    if response.status_code != 200:
        return f"status {response.status_code}: {response.text[:300]}"
    if response.headers.get("content-type") != "application/json":
        return f"content-type {response.headers.get('content-type')!r}"
    body = response.json()
    if problem := check_id(response, body):
        return problem
    want = completion_fields(fmt, body["id"], expected, final=True)
    return None if body == want else f"body {body!r} != {want!r}"


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) for each event; raises ValueError on anything else."""
    if not text.endswith("\n\n"):
        raise ValueError(f"stream does not end with a blank line: {text[-200:]!r}")
    events = []
    for block in text[:-2].split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            key, sep, value = line.partition(": ")
            if not sep or key not in ("event", "data") or (key == "event" and name is not None):
                raise ValueError(f"unexpected line {line!r}")
            if key == "data" and data is not None:
                raise ValueError(f"two data lines in one event: {block!r}")
            name, data = (value, data) if key == "event" else (name, value)
        if data is None:
            raise ValueError(f"event without data: {block!r}")
        events.append((name, data))
    return events


def check_v2_stream(
    response: httpx.Response, expected: str, error: dict[str, str] | None
) -> str | None:
    """v2: named completion events whose texts add up to `expected`, then the final event
    (empty text, stop_reason set), or, with `error`, the error event instead."""
    ping = ("ping", '{"type": "ping"}')
    events = [(n, d) for n, d in sse_events(response.text) if (n, d) != ping]
    completions = [json.loads(data) for name, data in events if name == "completion"]
    if not completions:
        return "no completion event"
    event_id = completions[0]["id"]
    if problem := check_id(response, completions[0]):
        return problem
    last_name, last_data = events[-1]
    if error is not None:
        if (last_name, json.loads(last_data)) != ("error", {"type": "error", "error": error}):
            return f"last event {last_name}: {last_data} is not the error"
        events, final = events[:-1], []
    else:
        final = [completion_fields("v2", event_id, "", final=True)]
    if any(name != "completion" for name, _ in events):
        return f"unexpected events {[name for name, _ in events]}"
    texts = [c["completion"] for c in completions[: len(completions) - len(final)]]
    partial = [completion_fields("v2", event_id, t, final=False) for t in texts]
    if completions != partial + final:
        return f"events {completions!r} are not {partial + final!r}"
    return None if "".join(texts) == expected else f"text {''.join(texts)!r} != {expected!r}"


def check_v1_stream(
    response: httpx.Response, expected: str, error: dict[str, str] | None
) -> str | None:
    """v1: data-only events, each with the whole text so far, the last with stop_reason
    (or, with `error`, the v1 error line), then `data: [DONE]`."""
    events = [(n, d) for n, d in sse_events(response.text) if (n, d) != ("ping", "{}")]
    if any(name is not None for name, _ in events):
        return f"unexpected event lines {[n for n, _ in events if n]}"
    datas = [data for _, data in events]
    if datas[-1:] != ["[DONE]"]:
        return f"stream does not end with [DONE]: {datas[-1:]}"
    payloads = [json.loads(data) for data in datas[:-1]]
    if not payloads:
        return "no completion event"
    event_id = payloads[0].get("id")
    if problem := check_id(response, payloads[0]):
        return problem
    if error is not None:
        want_error = {
            "type": "error",
            "error": error,
            "exception": f"{error['type']}: {error['message']}",
        }
        if payloads[-1] != want_error:
            return f"last event {payloads[-1]!r} != {want_error!r}"
        payloads, final = payloads[:-1], None
    else:
        final = payloads[-1]
        payloads = payloads[:-1]
        if final != completion_fields("v1", event_id, expected, final=True):
            return f"final event {final!r}"
    texts = [p.get("completion", "") for p in payloads]
    partial = [completion_fields("v1", event_id, t, final=False) for t in texts]
    if payloads != partial:
        return f"intermediate events {payloads!r} are not {partial!r}"
    if any(not b.startswith(a) for a, b in itertools.pairwise(texts)):
        return f"texts do not grow: {texts!r}"
    whole = texts[-1] if texts else ""
    if error is not None and whole != expected:
        return f"text before the error {whole!r} != {expected!r}"
    return None


def check_error(response: httpx.Response, status: int, error_type: str) -> str | None:
    """An upstream error before the first byte: its status, envelope and retry headers."""
    want = {"type": "error", "error": {"type": error_type, "message": f"scripted failure {status}"}}
    got = (response.status_code, response.headers.get("content-type"), response.json())
    if got != (status, "application/json", want):
        return f"{got!r} != {(status, 'application/json', want)!r}"
    relayed = {k: response.headers.get(k) for k in ("retry-after", "x-should-retry", "request-id")}
    if relayed != {"retry-after": "1", "x-should-retry": "false", "request-id": "req_fake"}:
        return f"relayed headers {relayed!r}"
    return None


# -- one request of each kind ---------------------------------------------------------

OVERLOADED = {"type": "overloaded_error", "message": "Overloaded"}


async def one(
    client: httpx.AsyncClient, rng: random.Random, n: int, kind: str, fmt: str
) -> str | None:
    """Send request number `n` of `kind` in `fmt`; return what was wrong, or None."""
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
    stream = kind in ("stream", "midstream error", "hang-up") or (
        kind.startswith("fail") and rng.random() < 0.5
    )
    if kind == "hang-up":
        words += " " + " ".join(rng.choice(WORDS) for _ in range(40))  # a long stream
    text = {
        "fail 529": f"FAIL 529 soak {n}",
        "fail 500": f"FAIL 500 soak {n}",
        "midstream error": f"MIDSTREAM_ERROR soak {n} {words}",
    }.get(kind, f"soak {n} {words}")
    body = {
        "model": "claude-2.1",
        "prompt": f"\n\nHuman: {text}\n\nAssistant:",
        "max_tokens_to_sample": 300,
        "stream": stream,
    }
    headers = {"anthropic-version": V2} if fmt == "v2" else {}
    expected = " echo: " + text  # the fake's reply, with the legacy leading space
    if kind == "midstream error":
        expected = " echo: MIDSTREAM_ERROR"  # the two deltas before the error

    if kind.startswith("fail"):
        response = await client.post("/v1/complete", json=body, headers=headers)
        status = int(kind.split()[1])
        return check_error(response, status, {529: "overloaded_error", 500: "api_error"}[status])
    if kind == "whole":
        response = await client.post("/v1/complete", json=body, headers=headers)
        return check_whole(response, fmt, expected)
    async with client.stream("POST", "/v1/complete", json=body, headers=headers) as response:
        if response.status_code != 200:
            return f"status {response.status_code}: {(await response.aread())[:300]!r}"
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return f"content-type {response.headers.get('content-type')!r}"
        if kind == "hang-up":
            return await hang_up(response, fmt, expected)
        await response.aread()
    error = OVERLOADED if kind == "midstream error" else None
    check = check_v1_stream if fmt == "v1" else check_v2_stream
    return check(response, expected, error)


async def hang_up(response: httpx.Response, fmt: str, expected: str) -> str | None:
    """Read up to the first completion event, check it, and leave (closing the
    connection: httpx does not reuse a connection whose answer was not read)."""
    async for line in response.aiter_lines():
        if line.startswith("data: ") and '"completion"' in line:
            event = json.loads(line[6:])
            text = event["completion"]
            if not text or not expected.startswith(text) or event["stop_reason"] is not None:
                return f"first event {event!r} does not start {expected!r}"
            want = completion_fields(fmt, event["id"], text, final=False)
            return None if event == want else f"first event {event!r} != {want!r}"
    return "the stream ended without a completion event"


# -- the run --------------------------------------------------------------------------


def sockets_by_inode() -> dict[str, tuple[int, int]]:
    """TCP sockets on this host: inode -> (local port, remote port), from /proc/net."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            found[fields[9]] = (local, remote)
    return found


def resources(pid: int, port: int, upstream_port: int) -> dict[str, int]:
    """RSS (KB) and open file descriptors of the bridge, from /proc. Descriptors are
    also counted by kind: connections to the upstream (aiohttp keeps idle ones pooled,
    as many as were last busy at once), client connections, and all the others."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
    assert match is not None, status
    inodes, kinds = sockets_by_inode(), Counter[str]()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        local, remote = inodes.get(target.removeprefix("socket:[").rstrip("]"), (0, 0))
        if remote == upstream_port:
            kinds["upstream_conns"] += 1
        elif local == port and remote:
            kinds["client_conns"] += 1
        else:
            kinds["other_fds"] += 1
    return {
        "rss_kb": int(match[1]),
        "fds": sum(kinds.values()),
        **{kind: kinds[kind] for kind in ("upstream_conns", "client_conns", "other_fds")},
    }


async def settled(measure: Callable[[], dict[str, int]]) -> dict[str, int]:
    """The bridge's resources once its descriptor count stops moving (closed client
    connections take a moment to be noticed), or after 3 s."""
    last = measure()
    for _ in range(30):
        await asyncio.sleep(0.1)
        now = measure()
        if now["fds"] == last["fds"]:
            return now
        last = now
    return last


async def phase(
    url: str, seconds: float, concurrency: int, tally: Tally, rng: random.Random, fake: FakeUpstream
) -> None:
    """`concurrency` closed-loop workers for `seconds`; every answer checked."""
    kinds, weights = list(KINDS), list(KINDS.values())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"x-api-key": "sk-soak-not-a-key"}
    deadline = asyncio.get_running_loop().time() + seconds
    numbers = itertools.count(sum(tally.requests.values()) + concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:

        async def worker() -> None:
            while asyncio.get_running_loop().time() < deadline:
                kind, fmt = rng.choices(kinds, weights)[0], rng.choice(FORMATS)
                n = next(numbers)
                if len(fake.requests) > 1000:
                    fake.requests.clear()  # the fake records every request
                try:
                    problem = await asyncio.wait_for(one(client, rng, n, kind, fmt), 60)
                except Exception as exc:  # any error is a failed answer
                    problem = f"{type(exc).__name__}: {exc}"
                tally.add(kind, fmt, problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def check_log(log: list[dict[str, Any]], tally: Tally) -> dict[str, Any]:
    """The bridge logged one `complete` line per request, with the right statuses."""
    lines = [line for line in log if line.get("event") == "complete"]
    by_kind = Counter[str]()
    for (kind, _), count in tally.requests.items():
        by_kind[kind] += count
    want = Counter(
        {
            200: by_kind["whole"] + by_kind["stream"] + by_kind["midstream error"]
            + by_kind["hang-up"],
            529: by_kind["fail 529"],
            500: by_kind["fail 500"],
        }
    )  # fmt: skip
    statuses = Counter(line.get("status") for line in lines)
    disconnected = sum(1 for line in lines if line.get("client_disconnected"))
    internal = sum(1 for line in log if "internal_error" in str(line.get("event")))
    return {
        "lines": len(lines),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "expected_statuses": {str(k): v for k, v in sorted(want.items())},
        "client_disconnected": disconnected,
        "internal_errors": internal,
        "ok": statuses == +want and internal == 0 and disconnected <= by_kind["hang-up"],
    }


async def soak(
    duration: float, concurrency: int, warmup: float, seed: int, log_path: Path
) -> dict[str, Any]:
    """The whole soak; the figures as a dict."""
    rng = random.Random(seed)  # noqa: S311 (traffic mix, not secrets)
    tally = Tally()
    fake = FakeUpstream()
    started = time.monotonic()
    async with serving(fake) as upstream_url, bridge_process(upstream_url, log_path) as bridge:
        ports = (int(bridge.url.rsplit(":", 1)[1]), int(upstream_url.rsplit(":", 1)[1]))
        measure = functools.partial(resources, bridge.process.pid, *ports)
        start = measure()
        await phase(bridge.url, warmup, concurrency, tally, rng, fake)
        warm = await settled(measure)
        await phase(bridge.url, duration - warmup, concurrency, tally, rng, fake)
        end = await settled(measure)
        await asyncio.sleep(0.2)  # the log line of the last hang-up
        log = check_log(bridge.log(), tally)
    total = sum(tally.requests.values())
    rss_growth = (end["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"]
    flat = {
        "rss": rss_growth <= RSS_TOLERANCE,
        "fds": abs(end["other_fds"] - warm["other_fds"]) <= FD_TOLERANCE
        and end["client_conns"] == 0
        and max(warm["upstream_conns"], end["upstream_conns"]) <= concurrency,
    }
    failures = sum(tally.failures.values())
    return {
        "duration_s": duration,
        "warmup_s": warmup,
        "elapsed_s": round(time.monotonic() - started, 1),
        "concurrency": concurrency,
        "seed": seed,
        "requests": {kind: {fmt: tally.requests[kind, fmt] for fmt in FORMATS} for kind in KINDS},
        "failures_by_kind": {
            kind: {fmt: tally.failures[kind, fmt] for fmt in FORMATS} for kind in KINDS
        },
        "total": total,
        "checked": total,  # every answer goes through a check; failures are counted
        "failures": failures,
        "failure_examples": tally.examples,
        "resources": {"start": start, "after_warmup": warm, "end": end},
        "rss_growth_after_warmup": round(rss_growth, 4),
        "tolerance": {"rss_fraction": RSS_TOLERANCE, "fds": FD_TOLERANCE},
        "flat": flat,
        "log": log,
        "pass": failures == 0 and all(flat.values()) and log["ok"] and total > 0,
    }


def table(r: dict[str, Any]) -> str:
    rows = [f"{'kind':<18}{'v1':>8}{'v2':>8}{'failures':>10}"]
    for kind in KINDS:
        counts = r["requests"][kind]
        failed = sum(r["failures_by_kind"][kind].values())
        rows.append(f"{kind:<18}{counts['v1']:>8}{counts['v2']:>8}{failed:>10}")
    v1 = sum(c["v1"] for c in r["requests"].values())
    v2 = sum(c["v2"] for c in r["requests"].values())
    rows.append(f"{'total':<18}{v1:>8}{v2:>8}{r['failures']:>10}")
    res = r["resources"]
    rows += [
        "",
        f"{'bridge':<18}{'start':>8}{'warm':>8}{'end':>8}   tolerance (end vs warm)",
        f"{'RSS (KB)':<18}"
        + "".join(f"{res[k]['rss_kb']:>8}" for k in ("start", "after_warmup", "end"))
        + f"   {r['rss_growth_after_warmup']:+.1%} (<= +{RSS_TOLERANCE:.0%})",
        f"{'open fds':<18}"
        + "".join(f"{res[k]['fds']:>8}" for k in ("start", "after_warmup", "end")),
        f"{'  upstream conns':<18}"
        + "".join(f"{res[k]['upstream_conns']:>8}" for k in ("start", "after_warmup", "end"))
        + f"   idle in the pool, <= concurrency ({r['concurrency']})",
        f"{'  client conns':<18}"
        + "".join(f"{res[k]['client_conns']:>8}" for k in ("start", "after_warmup", "end"))
        + "   0 with no client connected",
        f"{'  other fds':<18}"
        + "".join(f"{res[k]['other_fds']:>8}" for k in ("start", "after_warmup", "end"))
        + f"   {res['end']['other_fds'] - res['after_warmup']['other_fds']:+d} "
        f"(within {FD_TOLERANCE})",
        "",
        f"log: {r['log']['lines']} complete lines, statuses {r['log']['statuses']} "
        f"(expected {r['log']['expected_statuses']}), "
        f"{r['log']['client_disconnected']} client disconnects, "
        f"{r['log']['internal_errors']} internal errors",
        f"{r['total']} requests in {r['duration_s']:g} s at concurrency {r['concurrency']}: "
        + ("PASS" if r["pass"] else "FAIL"),
    ]
    for example in r["failure_examples"]:
        rows.append(f"  failed {example['kind']} {example['format']}: {example['problem']}")
    return "\n".join(rows)


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/soak.py", description=__doc__.split("\n\n")[2].replace("\n", " ")
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds in all [60]")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers [8]")
    parser.add_argument(
        "--warmup", type=float, help="seconds of the duration before the baseline [a quarter]"
    )
    parser.add_argument("--seed", type=int, default=1, help="of the traffic mix [1]")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")
    parser.add_argument("--log", type=Path, metavar="FILE", help="keep the bridge's log here")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.duration / 4
    if not 0 < args.warmup < args.duration or args.concurrency < 1:
        parser.error("need 0 < --warmup < --duration and --concurrency >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        log_path = args.log or Path(tmp) / "bridge.log"
        result = asyncio.run(
            soak(args.duration, args.concurrency, args.warmup, args.seed, log_path)
        )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
