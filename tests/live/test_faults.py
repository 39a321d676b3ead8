"""Fault injection against a real bridge process on loopback (tests/fakes/faults.py).

Each fault, for each way a legacy client can ask (a JSON body or a stream, v1 or v2),
has one exact client-visible result:

- `Fail`: an error before the first byte: status, legacy envelope, and which upstream
  headers came along.
- `Cut`: a 200 stream with the text sent so far (" Hello wörld"), then the failure: v2 an
  `event: error`, v1 an error line with `exception` and no `stop_reason`, then
  `data: [DONE]`; never a final completion event.
- `OK`: the complete answer, as if nothing had happened.

Every call is bounded in time, so a hang fails the test instead of the suite.
"""

import asyncio
import contextlib
import itertools
import json
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fakes.factories import legacy_body
from tests.fakes.fault_answer import ANSWER_HEADERS, STATUS_FAULTS
from tests.fakes.servers import BridgeProcess, bridge_process, free_port
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

SETTINGS = {  # max_body_bytes stays at its default, 32 MiB
    "BRIDGE_CONNECT_TIMEOUT": "1",
    "BRIDGE_FIRST_BYTE_TIMEOUT": "1",
    "BRIDGE_IDLE_TIMEOUT": "1",
    "BRIDGE_RETRIES": "0",  # each fault reaches the client as it happened
}
BOUND = 5  # seconds any call may take: the configured timeouts plus a generous margin
MAX_BODY = 32 * 1024 * 1024

TIMEOUT = "upstream did not answer in time"  # first_byte_timeout
IDLE = "upstream sent nothing for 1 s"  # idle_timeout
LOST = "upstream connection lost"
READ = "upstream sent a response the bridge cannot read"
HTML_503 = "<html><body><h1>503 Service Unavailable</h1></body></html>"


class Matching:
    """Equal to any string the pattern matches in full (for messages we cannot pin)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(self.pattern, other) is not None

    def __repr__(self) -> str:
        return f"Matching({self.pattern!r})"


TOO_BIG = Matching(rf"upstream .*larger than .*\b{MAX_BODY} bytes")
Message = str | Matching


@dataclass(frozen=True)
class Fail:
    """An error before the first byte. `headers`: value each must have, None for absent."""

    status: int
    type: str
    message: Message
    headers: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Cut:
    """A 200 stream cut after " Hello wörld" by an error of this type and message."""

    type: str
    message: Message


OK = "ok"
Expected = Fail | Cut | str

# What the bridge adds itself: no retry advice, and nothing of the upstream's own.
OWN: dict[str, str | None] = {
    "x-should-retry": None,
    "retry-after": None,
    "retry-after-ms": None,
    "x-fault-private": None,
}


@dataclass(frozen=True)
class Row:
    """A fault and its result for a JSON call and for a stream (None: not applicable)."""

    fault: str
    json: Expected | None
    stream: Expected | None
    bound: float = BOUND


def same(fault: str, expected: Expected, **options: Any) -> Row:
    return Row(fault, expected, expected, **options)


KEPT = ("request-id", "retry-after", "retry-after-ms", "x-should-retry")


def relayed(status_fault: str) -> dict[str, str | None]:
    """What an upstream error keeps of its headers: its id, retry advice and rate limits,
    as sent (None where it sent none); and nothing else."""
    sent = {**ANSWER_HEADERS, **STATUS_FAULTS[status_fault][2]}
    kept = {name: sent.get(name) for name in KEPT}
    limit = "anthropic-ratelimit-requests-remaining"
    return {**kept, limit: sent[limit], "x-fault-private": None, "set-cookie": None}


def relay(fault: str, status: int, kind: str, message: str) -> Row:
    return same(fault, Fail(status, kind, message, relayed(fault)))


TABLE = [
    # The upstream never answers, or answers nothing.
    same("stall_headers", Fail(504, "timeout_error", TIMEOUT, OWN)),
    same("close_before_headers", Fail(502, "api_error", LOST, OWN)),
    same("reset_before_headers", Fail(502, "api_error", LOST, OWN)),
    # It starts, then stops, stalls, resets or errs.
    Row("stall_body", Fail(504, "timeout_error", IDLE, OWN), Cut("timeout_error", IDLE)),
    Row("cut_clean", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    Row("cut_mid_event", None, Cut("api_error", LOST)),
    Row("eof_mid_chunk", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    Row("reset", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    Row("error_event", None, Cut("overloaded_error", "Overloaded")),
    # It breaks its framing mid-answer: at once, not after idle_timeout.
    Row("bad_chunk_size", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    Row("bad_chunk_size_held", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    Row("chunk_overrun_held", Fail(502, "api_error", LOST, OWN), Cut("api_error", LOST)),
    # It sends what cannot be read, or more than anyone should read.
    Row(
        "malformed",
        Fail(502, "api_error", READ, OWN),
        Cut("api_error", "bad upstream stream: content_block_delta event data is not JSON"),
    ),
    Row("huge", Fail(502, "api_error", TOO_BIG, OWN), Cut("api_error", TOO_BIG), bound=15),
    # Answers that are odd but whole.
    Row("garbage_lines", None, OK),
    same("stall_after_stop", OK),
    same("slow", OK, bound=10),
    # Upstream errors keep their status, envelope and retry headers.
    relay("status_429", 429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    relay("status_500", 500, "api_error", "Internal server error"),
    relay("status_503", 503, "api_error", "Service unavailable"),
    relay("status_504", 504, "timeout_error", "Request timed out"),
    relay("status_529", 529, "overloaded_error", "Overloaded"),
    # A status no final answer has: 502, naming it.
    same("status_600", Fail(502, "api_error", "upstream sent unexpected status 600", OWN)),
    same("status_000", Fail(502, "api_error", "upstream sent unexpected status 0", OWN)),
    same("status_101", Fail(502, "api_error", "upstream sent unexpected status 101", OWN)),
    # Not an envelope (a load balancer's page): the bridge makes one.
    relay("status_503_html", 503, "api_error", "upstream said: " + HTML_503),
]


@dataclass(frozen=True)
class Mode:
    """How the legacy client asks."""

    name: str
    stream: bool
    version: str | None

    @property
    def v1(self) -> bool:
        return self.version != "2023-06-01"

    @property
    def headers(self) -> dict[str, str]:
        version = {"anthropic-version": self.version} if self.version else {}
        return {"x-api-key": "sk-fault", **version}


MODES = [
    Mode("json-v1", False, "2023-01-01"),
    Mode("json-v2", False, "2023-06-01"),
    Mode("stream-v1", True, None),
    Mode("stream-v2", True, "2023-06-01"),
]
CASES = [
    pytest.param(row, mode, expected, id=f"{row.fault}-{mode.name}")
    for row in TABLE
    for mode in MODES
    if (expected := row.stream if mode.stream else row.json) is not None
]
tags = (f"t{n}" for n in itertools.count())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    log = tmp_path_factory.mktemp("faults") / "bridge.log"
    async with bridge_process(upstream.url, log, SETTINGS) as process:
        yield process


@dataclass
class Seen:
    """What the legacy client got."""

    status: int
    headers: httpx.Headers
    body: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def call(
    client: httpx.AsyncClient,
    url: str,
    mode: Mode,
    prompt: str,
    on_text: Callable[[], None] | None = None,
) -> Seen:
    """One legacy call; `on_text()` runs once the upstream's first text has passed the
    bridge on a stream (v1 holds its newest piece back: its " Hello" line means the
    bridge has read " wörld")."""
    body = legacy_body(prompt=prompt, stream=mode.stream)
    url += "/v1/complete"
    marker = "Hello" if mode.v1 else "wörld"
    async with client.stream("POST", url, json=body, headers=mode.headers) as response:
        parts: list[str] = []
        waiting = on_text is not None and response.status_code == 200
        async for text in response.aiter_text():
            parts.append(text)
            if waiting and marker in "".join(parts).rpartition("\n\n")[0]:
                waiting = False
                assert on_text is not None  # waiting is only ever set with it
                on_text()
    return Seen(response.status_code, response.headers, "".join(parts))


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    """(event name or None, parsed data) per event; `[DONE]` stays a string."""
    assert text.endswith("\n\n"), f"the stream ends mid-event: {text[-200:]!r}"
    events = []
    for block in text[:-2].split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data = value
            else:
                raise AssertionError(f"not an SSE line: {line!r}")
        assert data is not None, f"an event without data: {block!r}"
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def completion(text: str, mode: Mode, stop: str | None = None) -> dict[str, Any]:
    body = {
        "type": "completion",
        "id": "compl_fault",
        "completion": text,
        "stop_reason": "stop_sequence" if stop else None,
        "model": "claude-2.1",
        "stop": stop,
        "log_id": "compl_fault",
    }
    return {**body, "truncated": False, "exception": None} if mode.v1 else body


Event = tuple[str | None, Any]
WHOLE, HUMAN = " Hello wörld ✓", "\n\nHuman:"


def expected_events(expected: Cut | str, mode: Mode) -> list[Event]:
    """The whole legacy stream: the complete answer, or one cut after " Hello wörld"."""
    if mode.v1:  # data lines only, each with the whole text so far, the newest held back
        tail: list[Event]
        if isinstance(expected, Cut):
            error = {"type": "error", "error": {"type": expected.type, "message": expected.message}}
            prefix = f"{expected.type}: "
            message = expected.message
            exception = (
                prefix + message
                if isinstance(message, str)
                else Matching(re.escape(prefix) + message.pattern)
            )
            tail = [(None, {**error, "exception": exception})]
        else:
            tail = [(None, completion(WHOLE, mode, HUMAN))]
        head: list[Event] = [
            (None, completion(" Hello", mode)),
            (None, completion(" Hello wörld", mode)),
        ]
        return [*head, *tail, (None, "[DONE]")]
    if isinstance(expected, Cut):
        error = {"type": "error", "error": {"type": expected.type, "message": expected.message}}
        tail = [("error", error)]
    else:
        tail = [("completion", completion(" ✓", mode)), ("completion", completion("", mode, HUMAN))]
    head = [("completion", completion(text, mode)) for text in (" Hello", " wörld")]
    return [("ping", {"type": "ping"}), *head, *tail]


def short(data: Any) -> Any:
    """Long completions as their length: a failure prints a diff one can read."""
    if isinstance(data, dict) and len(text := data.get("completion", "")) > 1000:
        return {**data, "completion": f"<{len(text)} characters>"}
    return data


def check(seen: Seen, expected: Expected, mode: Mode) -> None:
    if isinstance(expected, Fail):
        assert seen.headers["content-type"].startswith("application/json")
        body = json.loads(seen.body)
        assert (seen.status, body) == (
            expected.status,
            {"type": "error", "error": {"type": expected.type, "message": expected.message}},
        )
        assert {name: seen.headers.get(name) for name in expected.headers} == expected.headers
        return
    assert seen.status == 200, seen.body[:500]
    assert seen.headers.get("request-id") == "req_fault"
    assert seen.headers.get("anthropic-ratelimit-requests-remaining") == "41"
    assert "x-fault-private" not in seen.headers
    if mode.stream:
        assert seen.headers["content-type"].startswith("text/event-stream")
        events = [(name, short(data)) for name, data in sse_events(seen.body)]
        wanted = expected_events(expected, mode)
        if mode.v1 and expected == OK:
            # v1 sends one line per upstream read that brought text: for an answer that
            # came in one read, only the last. The intermediate lines are some of the
            # expected ones, in order; the end is the same.
            middle = iter(wanted[:-2])
            assert all(event in middle for event in events[:-2]), seen.body[:2000]
            events, wanted = events[-2:], wanted[-2:]
        assert events == wanted, seen.body[:2000]
    else:
        assert seen.headers["content-type"].startswith("application/json")
        assert short(json.loads(seen.body)) == completion(WHOLE, mode, HUMAN)


@pytest.mark.parametrize(("row", "mode", "expected"), CASES)
async def test_fault(
    bridge: BridgeProcess,
    upstream: FakeUpstream,
    client: httpx.AsyncClient,
    row: Row,
    mode: Mode,
    expected: Expected,
) -> None:
    """Each upstream fault gives the client its one exact result, within the bound, and
    the bridge hangs up on an upstream that would keep the connection open."""
    tag = next(tags)
    prompt = f"\n\nHuman: FAULT {row.fault} {tag}\n\nAssistant:"

    def release() -> None:
        upstream.exchanges[tag].proceed.set()

    async with asyncio.timeout(row.bound):
        seen = await call(client, bridge.url, mode, prompt, release)
        exchange = upstream.exchanges[tag]
        if exchange.held:  # the upstream kept the connection open: the bridge closes it
            await exchange.closed.wait()
    check(seen, expected, mode)
    assert (exchange.method, exchange.path) == ("POST", "/v1/messages")
    assert exchange.headers["anthropic-version"] == "2023-06-01"
    assert exchange.body.get("stream", False) is mode.stream


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: new connections hang in SYN_SENT."""
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # room for one connection, never accepted
        queued.connect(listener.getsockname())
        yield listener.getsockname()[1]


UNREACHABLE = {
    # nobody listens: refused at once
    "refused": ({}, Fail(502, "api_error", "upstream unreachable: could not connect", OWN)),
    # nobody answers the SYN: connect_timeout (first_byte_timeout, longer, must not win)
    "connect_timeout": (
        {"BRIDGE_FIRST_BYTE_TIMEOUT": "3"},
        Fail(502, "api_error", "upstream unreachable: connection timed out", OWN),
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(UNREACHABLE))
async def unreachable(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[BridgeProcess, Fail]]:
    """(bridge, expected result) for an upstream that cannot be reached."""
    env, expected = UNREACHABLE[request.param]
    log = tmp_path_factory.mktemp(request.param) / "bridge.log"
    with contextlib.ExitStack() as stack:
        port = free_port() if request.param == "refused" else stack.enter_context(blackhole())
        url = f"http://127.0.0.1:{port}"
        async with bridge_process(url, log, {**SETTINGS, **env}) as process:
            yield process, expected


@pytest.mark.parametrize("mode", MODES, ids=[mode.name for mode in MODES])
async def test_unreachable_upstream(
    unreachable: tuple[BridgeProcess, Fail], client: httpx.AsyncClient, mode: Mode
) -> None:
    """An upstream that cannot be reached: 502 api_error with no retry advice, by
    connect_timeout at the latest."""
    bridge, expected = unreachable
    async with asyncio.timeout(BOUND):
        seen = await call(client, bridge.url, mode, "\n\nHuman: Hi\n\nAssistant:")
    check(seen, expected, mode)
