"""Backpressure and hang-ups through a real bridge process on real sockets: a client that
reads a long stream slowly holds the upstream back instead of making the bridge buffer,
and a client that hangs up, mid-stream or while the bridge still waits for the upstream,
makes the bridge close its upstream call within a second."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.types import Receive, Scope, Send

from tests.fakes.servers import BridgeProcess, bridge_process, request_body, serving
from tests.fakes.sse import HEAD, TAIL, delta

pytestmark = pytest.mark.asyncio(loop_scope="module")

V2 = "2023-06-01"
FORMATS = {"v1": None, "v2": V2}  # legacy stream format -> the client's anthropic-version
KB, MB = 1024, 1024 * 1024
OFFER = 256 * MB  # what the long upstream offers per stream, generated as it goes
DELTA_TEXT = " and the sky scatters blue light the most"  # a text_delta: a few words
BATCH = 100  # text_delta events per upstream write (about 15 KB)
CLIENT_RCVBUF = 4 * KB  # the slow client's SO_RCVBUF (Linux doubles it)
READ_SECONDS = 6  # how long the slow client reads
READ_RATE = KB  # bytes a second
RSS_SLACK = 8 * MB  # what the bridge's RSS may grow by while the slow stream is open
USER_BUFFERS = 2 * MB  # aiohttp's read buffer, uvloop's write buffer, a v1 chunk: bounded
CLOSE_WITHIN = 1.0  # seconds from a client's hang-up to the upstream seeing the bridge close


def rss_kb(pid: int) -> int:
    """A process's resident set in KB, as /proc reports it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no VmRSS")


def kernel_path_bytes() -> int:
    """The most the kernel can hold on the path upstream -> bridge -> slow client: the
    upstream's send buffer, the bridge's receive and send buffers (each autotuned up to
    the tcp_rmem/tcp_wmem maximum) and the client's receive buffer."""
    rmem_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 2 * wmem_max + rmem_max + 2 * CLIENT_RCVBUF


@dataclass
class Call:
    """One call the upstream got: the bytes its socket took, whether it is holding its
    answer, and when (loop time) the bridge closed the connection."""

    prompt: str
    pushed: int = 0
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float | None = None


class ScriptedUpstream:
    """A Messages upstream scripted by the prompt:

        LONG <n>      a stream of about n bytes: `message_start`, then text deltas made as
                      they are sent, `BATCH` to a write, then the end. `Call.pushed` counts
                      the bytes handed to the connection (uvicorn's `send` waits while
                      its write buffer is over the high-water mark).
        HOLD status   no answer at all, until the bridge hangs up
        HOLD body     status and headers, then nothing, until the bridge hangs up

    Every call notes when the bridge hangs up."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.arrived = asyncio.Event()  # set by each call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await request_body(receive)
        call = Call(json.loads(raw)["messages"][-1]["content"])
        self.calls.append(call)
        self.arrived.set()
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            call.closed_at = loop.time()
            call.closed.set()

        watcher = asyncio.create_task(watch(), name="watch for the bridge hanging up")
        try:
            script, argument = call.prompt.split()
            if script == "LONG":
                await self._long(call, send, int(argument))
            elif argument == "body":
                headers = [(b"content-type", b"text/event-stream")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
            call.holding.set()
            await call.closed.wait()  # uvicorn says so at once after a complete answer
        finally:
            watcher.cancel()

    async def _long(self, call: Call, send: Send, offer: int) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HEAD, "more_body": True})
        call.pushed += len(HEAD)
        batch = delta(DELTA_TEXT) * BATCH
        while call.pushed < offer and not call.closed.is_set():
            await send({"type": "http.response.body", "body": batch, "more_body": True})
            if not call.closed.is_set():  # uvicorn drops writes once disconnected
                call.pushed += len(batch)
            await asyncio.sleep(0)  # let the watcher see a hang-up
        if not call.closed.is_set():
            await send({"type": "http.response.body", "body": TAIL})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> ScriptedUpstream:
    return ScriptedUpstream()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(
    upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    """One real bridge process (its defaults) in front of the scripted upstream, shared
    by the tests that hang up while it waits."""
    log = tmp_path_factory.mktemp("backpressure") / "bridge.log"
    async with serving(upstream) as upstream_url, bridge_process(upstream_url, log) as process:
        yield process


def legacy_request(url: str, prompt: str, *, stream: bool, version: str | None) -> bytes:
    """One raw HTTP/1.1 `POST /v1/complete`, as a legacy client sends it."""
    body = json.dumps(
        {
            "model": "claude-2.1",
            "prompt": f"\n\nHuman: {prompt}\n\nAssistant:",
            "max_tokens_to_sample": 4000,
            "stream": stream,
        }
    ).encode()
    lines = [
        "POST /v1/complete HTTP/1.1",
        f"host: {url.removeprefix('http://')}",
        "x-api-key: sk-test",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    if version:
        lines.append(f"anthropic-version: {version}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def send_request(url: str, request: bytes, rcvbuf: int | None = None) -> socket.socket:
    """Connect a non-blocking socket to `url` and send `request`. `rcvbuf` shrinks the
    receive buffer before connecting, so the TCP window starts and stays small."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, request)
    return sock


async def read_to_end(sock: socket.socket) -> bytes:
    """A chunked answer, read whole (up to its last chunk)."""
    loop, data = asyncio.get_running_loop(), b""
    async with asyncio.timeout(10):
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = await loop.sock_recv(sock, 65536)
            assert chunk, f"connection closed before the answer ended: {data[-300:]!r}"
            data += chunk
    return data


async def read_slowly(sock: socket.socket, seconds: float, rate: int) -> bytes:
    """Read about `rate` bytes a second from `sock` for `seconds`."""
    loop = asyncio.get_running_loop()
    got, step = bytearray(), 0.25
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(step):
                got += await loop.sock_recv(sock, int(rate * step))
        await asyncio.sleep(step)
    return bytes(got)


def completes(bridge: BridgeProcess) -> list[dict[str, Any]]:
    return [line for line in bridge.log() if line["event"] == "complete"]


async def quiet(bridge: BridgeProcess, upstream: ScriptedUpstream) -> int:
    """Wait until the bridge has logged every call so far (a request logs once it is
    done); the number of lines."""
    async with asyncio.timeout(5):
        while len(lines := completes(bridge)) < len(upstream.calls):  # noqa: ASYNC110 (a file)
            await asyncio.sleep(0.05)
    return len(lines)


async def complete_line(bridge: BridgeProcess, index: int) -> dict[str, Any]:
    """The bridge's log line for its `index`-th translated request, once written."""
    async with asyncio.timeout(5):
        while len(lines := completes(bridge)) <= index:  # noqa: ASYNC110 (a file to poll)
            await asyncio.sleep(0.05)
    return lines[index]


async def closed_within(call: Call, hung_up: float) -> None:
    """The upstream saw the bridge close `call` within CLOSE_WITHIN of the hang-up."""
    try:
        await asyncio.wait_for(call.closed.wait(), CLOSE_WITHIN)
    except TimeoutError:
        pytest.fail(f"the upstream call is still open {CLOSE_WITHIN} s after the hang-up")
    assert call.closed_at is not None and call.closed_at - hung_up < CLOSE_WITHIN


def check_stream_prefix(raw: bytes, fmt: str) -> None:
    """What a slow client got is the start of a right legacy stream in its format."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"content-type: text/event-stream" in head, head
    first_event = body.split(b"\r\n", 1)[1]  # after the first chunk's size line
    start = b"data: " if fmt == "v1" else b"event: completion\ndata: "
    assert first_event.startswith(start + b'{"type":"completion"'), first_event[:200]
    # v2: the first delta's text; v1: the text of the deltas in the first read, at most.
    first_text = b'"completion":"' + DELTA_TEXT.encode() + (b'"' if fmt == "v2" else b"")
    assert first_text in first_event[:400], first_event[:400]


@pytest.mark.parametrize("fmt", ["v1", "v2"])
async def test_slow_reader_gets_backpressure_not_buffering(tmp_path: Path, fmt: str) -> None:
    """A stream read at ~1 KB/s for 6 s: the upstream could push only what the buffers
    along the path hold (the kernel's, plus a bounded amount in the bridge), far below
    the 256 MB it offered, and nothing more once they were full; the bridge's RSS grew
    by less than 8 MB; when the client hangs up, the upstream sees the bridge close its
    connection within 1 s. (A fresh bridge: its own RSS, and a wedged one fails here.)"""
    upstream = ScriptedUpstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log") as bridge,
    ):
        await slow_reader(bridge, upstream, fmt)


async def slow_reader(bridge: BridgeProcess, upstream: ScriptedUpstream, fmt: str) -> None:
    """The slow-reader scenario against `bridge`, in front of `upstream`."""
    pid, loop = bridge.process.pid, asyncio.get_running_loop()
    for version in FORMATS.values():  # warm up: a short stream in each format, read whole
        request = legacy_request(bridge.url, "LONG 40000", stream=True, version=version)
        with await send_request(bridge.url, request) as sock:
            await read_to_end(sock)
    logged = await quiet(bridge, upstream)
    rss_before = rss_peak = rss_kb(pid)
    request = legacy_request(bridge.url, f"LONG {OFFER}", stream=True, version=FORMATS[fmt])
    sock = await send_request(bridge.url, request, rcvbuf=CLIENT_RCVBUF)
    midway = None

    async def sample() -> None:
        nonlocal rss_peak, midway
        started = loop.time()
        while True:
            rss_peak = max(rss_peak, rss_kb(pid))
            if midway is None and loop.time() - started >= READ_SECONDS / 2:
                midway = upstream.calls[-1].pushed
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample(), name="sample the bridge's RSS")
    try:
        raw = await read_slowly(sock, READ_SECONDS, READ_RATE)
    finally:
        sampler.cancel()
    call = upstream.calls[-1]
    pushed = call.pushed
    figures = (
        f"{fmt}: upstream pushed {pushed} bytes ({midway} midway), client read {len(raw)}, "
        f"bridge RSS {rss_before} -> peak {rss_peak} KB"
    )
    print(figures)
    hung_up = loop.time()
    sock.close()  # with unread data: a reset, as when a client process dies
    await closed_within(call, hung_up)

    check_stream_prefix(raw, fmt)
    assert READ_SECONDS * READ_RATE / 2 < len(raw) <= READ_SECONDS * READ_RATE * 2, figures
    assert pushed <= kernel_path_bytes() + USER_BUFFERS < OFFER / 4, figures
    assert midway is not None and pushed - midway <= USER_BUFFERS, figures  # stalled
    assert (rss_peak - rss_before) * KB < RSS_SLACK, figures
    line = await complete_line(bridge, logged)
    assert (line["format"], line["status"], line["client_disconnected"]) == (fmt, 200, True)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("phase", ["status", "body"])
async def test_hangup_while_waiting_for_the_upstream_closes_it(
    bridge: BridgeProcess, upstream: ScriptedUpstream, phase: str, stream: bool
) -> None:
    """A client that hangs up while the bridge waits for the upstream's status line, or
    for its first body byte, makes the real bridge process close the upstream call within
    1 s, stream or not; its log line says the client disconnected."""
    loop = asyncio.get_running_loop()
    logged = await quiet(bridge, upstream)
    upstream.arrived.clear()
    request = legacy_request(bridge.url, f"HOLD {phase}", stream=stream, version=V2)
    with await send_request(bridge.url, request) as sock:
        async with asyncio.timeout(5):
            await upstream.arrived.wait()
            call = upstream.calls[-1]
            await call.holding.wait()
            if phase == "body" and stream:  # the bridge has answered 200 and waits for events
                head = await loop.sock_recv(sock, 65536)
                assert head.startswith(b"HTTP/1.1 200 "), head
        if phase == "body" and not stream:
            await asyncio.sleep(0.3)  # time for the bridge to read the upstream's headers
    hung_up = loop.time()
    await closed_within(call, hung_up)
    line = await complete_line(bridge, logged)
    assert line["client_disconnected"] is True, line
    assert line.get("upstream_status") == (200 if phase == "body" else None), line
    assert line["status"] == (200 if phase == "body" and stream else None), line
