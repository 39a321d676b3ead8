"""Slow and greedy clients, on a real `complete-bridge serve` process over raw sockets.

- A request head not complete within `header_timeout` is a 408 `timeout_error` in the
  legacy envelope, then the connection closes; a connection that sends nothing is closed.
- A body that stalls for `body_timeout` is a 408 and a close (legacy and pass-through);
  one that keeps coming, however slowly, is served.
- A slowloris (200 heads trickling a byte a second) holds nothing for long, and normal
  calls are served while it lasts.
- Past `max_client_connections`, a new connection is answered 503 `overloaded_error` with
  `retry-after` and closed; the connections already open keep being served.
- The timers end no call that is slow on the upstream's side: a stream held longer than
  both timeouts finishes, and 1,000 streams held open at once all finish, on the defaults.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fakes.factories import legacy_body
from tests.fakes.raw_client import BOUND, Connection, head
from tests.fakes.raw_server import RawServer
from tests.fakes.servers import BridgeProcess, bridge_process, free_port, serving
from tests.fakes.upstream import FakeUpstream, gated_upstream

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEADER_TIMEOUT = 2  # seconds, shortened for the tests (default 30)
BODY_TIMEOUT = 2  # seconds (default 60)
SHORT = {"BRIDGE_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "BRIDGE_BODY_TIMEOUT": str(BODY_TIMEOUT)}
KEY = "sk-ant-slow-clients-0123456789"
V2 = (b"anthropic-version", b"2023-06-01")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[str]:
    async with serving(FakeUpstream()) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BridgeProcess]:
    """A bridge with short head and body timeouts."""
    log = tmp_path_factory.mktemp("slow") / "bridge.log"
    async with bridge_process(upstream, log, SHORT) as process:
        yield process


def post(path: str, body: bytes, *headers: tuple[bytes, bytes]) -> bytes:
    """A POST head for `body` with a key and content-length."""
    framing = [(b"x-api-key", KEY.encode()), (b"content-type", b"application/json")]
    framing += [(b"content-length", str(len(body)).encode()), *headers]
    return head(path, "POST", framing)


def refusals(bridge: BridgeProcess, reason: str) -> list[dict[str, Any]]:
    """The bridge's `request.refused` warnings whose reason has `reason` in it."""
    return [
        e
        for e in bridge.log()
        if e.get("event") == "request.refused" and reason in e["reason"] and e["level"] == "warning"
    ]


def complete_body(**overrides: Any) -> bytes:
    return json.dumps(legacy_body(**overrides)).encode()


async def trickle(connection: Connection, data: bytes, gap: float) -> None:
    """Send `data` a byte at a time, `gap` seconds apart, until done or the bridge closes."""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        for byte in data:
            await connection.send(bytes([byte]))
            await asyncio.sleep(gap)


async def timed_out(connection: Connection, within: float) -> tuple[dict[str, str], float]:
    """The 408 the bridge answers within `within` seconds, and when it came; then the
    connection must be closed."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:  # Connection.reply waits BOUND seconds at most
            with contextlib.suppress(TimeoutError):
                reply = await connection.reply()
                break
    elapsed = time.monotonic() - started
    assert (reply.status, reply.headers["connection"]) == (408, "close")
    assert "retry-after" not in reply.headers
    assert await connection.closed()
    return reply.error(retry=True), elapsed


# --- heads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(head(), id="request-line"),
        pytest.param(post("/v1/complete", complete_body()), id="headers"),
    ],
)
async def test_a_head_sent_a_byte_a_second_is_a_408_then_closed(
    bridge: BridgeProcess, request_head: bytes
) -> None:
    """1 byte a second: a 408 `timeout_error` once header_timeout has passed, not before,
    and the connection closes; what was sent never reached the app."""
    async with Connection.to(bridge.url) as connection:
        sending = asyncio.create_task(trickle(connection, request_head, 1.0))
        error, elapsed = await timed_out(connection, HEADER_TIMEOUT + BOUND)
        sending.cancel()
    assert error == {
        "type": "timeout_error",
        "message": f"request headers not received within {HEADER_TIMEOUT} s",
    }
    assert elapsed > HEADER_TIMEOUT - 1.5  # the first byte went out just before the clock
    assert connection.sent < len(request_head)


async def test_a_head_that_stops_is_a_408_too(bridge: BridgeProcess) -> None:
    """Half a head, then silence: the same 408."""
    async with Connection.to(bridge.url) as connection:
        await connection.send(head()[:20])
        error, _ = await timed_out(connection, HEADER_TIMEOUT + BOUND)
    assert error["type"] == "timeout_error"
    assert refusals(bridge, "headers not received")[-1]["status"] == 408


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    bridge: BridgeProcess,
) -> None:
    """No byte of a request: no request to answer (a browser's preconnect, a probe):
    the bridge closes it after header_timeout, writing nothing."""
    async with Connection.to(bridge.url) as connection:
        async with asyncio.timeout(HEADER_TIMEOUT + BOUND):
            assert await connection.reader.read() == b""


async def test_the_clock_runs_per_request_on_a_kept_alive_connection(bridge: BridgeProcess) -> None:
    """Requests on one connection, each quick, over more than header_timeout in all, are
    all served; a later head that trickles gets its own 408, timed from its first byte."""
    async with Connection.to(bridge.url) as connection:
        for _ in range(3):
            await connection.send(head())
            assert (await connection.reply()).status == 200
            await asyncio.sleep(HEADER_TIMEOUT / 2 + 0.1)
        await connection.send(b"GET /hea")
        error, elapsed = await timed_out(connection, HEADER_TIMEOUT + BOUND)
    assert error["type"] == "timeout_error"
    assert elapsed > HEADER_TIMEOUT - 0.5


# --- bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/complete", "/v1/messages"])
async def test_a_body_that_stalls_is_a_408_then_closed(bridge: BridgeProcess, path: str) -> None:
    """Head and part of the body, then nothing: a 408 after body_timeout, legacy or
    pass-through alike; and the bridge serves the next caller."""
    body = complete_body()
    async with Connection.to(bridge.url) as connection:
        await connection.send(post(path, body) + body[:10])
        error, elapsed = await timed_out(connection, BODY_TIMEOUT + BOUND)
    assert error == {
        "type": "timeout_error",
        "message": f"request body: no byte received for {BODY_TIMEOUT} s",
    }
    assert elapsed > BODY_TIMEOUT - 0.5
    assert refusals(bridge, "request body: no byte")[-1]["status"] == 408
    async with httpx.AsyncClient(timeout=BOUND) as client:
        answer = await client.post(
            bridge.url + "/v1/complete", json=legacy_body(), headers={"x-api-key": KEY}
        )
    assert answer.status_code == 200


async def test_a_chunked_body_that_stalls_is_a_408(bridge: BridgeProcess) -> None:
    async with Connection.to(bridge.url) as connection:
        framing = [(b"x-api-key", KEY.encode()), (b"transfer-encoding", b"chunked")]
        await connection.send(head("/v1/complete", "POST", framing), b'5\r\n{"mod')
        error, _ = await timed_out(connection, BODY_TIMEOUT + BOUND)
    assert error["type"] == "timeout_error"


class SlowReadingUpstream(RawServer):
    """A raw Messages upstream that takes a request's head, then reads nothing of its
    body for `stall` seconds (its receive buffer kept small), then reads it all and
    answers 200 with the number of body bytes it got."""

    receive_buffer = 16 * 1024

    def __init__(self, stall: float) -> None:
        super().__init__()
        self.stall = stall

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_head = (await reader.readuntil(b"\r\n\r\n")).lower()
        await asyncio.sleep(self.stall)
        if b"transfer-encoding: chunked" in request_head:
            size = len(await reader.readuntil(b"\r\n0\r\n\r\n"))
        else:
            length = request_head.split(b"content-length:")[1].split(b"\r\n")[0]
            size = len(await reader.readexactly(int(length)))
        answer = json.dumps({"received": size}).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(answer), answer)
        )
        await writer.drain()


async def test_time_the_bridge_holds_off_reading_a_body_is_not_the_clients(tmp_path: Path) -> None:
    """A pass-through body of 8 MB to an upstream that stops reading for three times
    body_timeout: the bridge stops reading from the client too (backpressure), and that
    silence is the bridge's, not the client's: the call is served, no 408."""
    body = b"x" * (8 * 1024 * 1024)
    upstream = SlowReadingUpstream(stall=3 * BODY_TIMEOUT)
    async with (
        upstream,
        bridge_process(upstream.url, tmp_path / "bridge.log", SHORT) as bridge,
        Connection.to(bridge.url) as connection,
    ):
        request_head = head("/v1/messages", "POST", [(b"content-length", str(len(body)).encode())])
        await connection.send(request_head, body)
        async with asyncio.timeout(3 * BODY_TIMEOUT + BOUND):
            while True:  # Connection.reply waits BOUND seconds at most
                with contextlib.suppress(TimeoutError):
                    reply = await connection.reply()
                    break
    assert reply.status == 200
    assert json.loads(reply.body) == {"received": len(body)}
    assert refusals(bridge, "") == []


async def test_a_slow_body_that_keeps_coming_is_served(bridge: BridgeProcess) -> None:
    """body_timeout bounds the silence between bytes, not the whole body: its last 12
    bytes a third of a second apart (4 s in all, twice body_timeout) are served."""
    body = complete_body()
    async with Connection.to(bridge.url) as connection:
        await connection.send(post("/v1/complete", body) + body[:-12])
        await trickle(connection, body[-12:], 1 / 3)
        reply = await connection.reply()
    assert reply.status == 200
    assert json.loads(reply.body)["type"] == "completion"


# --- a slowloris ------------------------------------------------------------------------

SLOW = 200  # connections trickling their heads


async def test_a_slowloris_is_cut_off_and_normal_calls_are_served_meanwhile(
    upstream: str, tmp_path: Path
) -> None:
    """200 connections send their heads at a byte a second. While they do, normal calls
    are answered as usual; after header_timeout every one of the 200 has its 408 and is
    closed (without the timeout they were held as long as they kept sending)."""
    timeout = 5  # long enough for the calls below to run while all 200 are open
    env = {"BRIDGE_HEADER_TIMEOUT": str(timeout)}
    async with bridge_process(upstream, tmp_path / "bridge.log", env) as bridge:
        outcomes: list[str] = []

        async def slow_client() -> None:
            async with Connection.to(bridge.url) as connection:
                sending = asyncio.create_task(trickle(connection, head(), 1.0))
                try:
                    error, _ = await timed_out(connection, timeout + 3 * BOUND)
                    outcomes.append(error["type"])
                finally:
                    sending.cancel()

        started = time.monotonic()
        slow = [asyncio.create_task(slow_client()) for _ in range(SLOW)]
        await asyncio.sleep(1)
        latencies = []
        async with httpx.AsyncClient(timeout=BOUND) as client:
            while time.monotonic() - started < timeout - 1:
                sent = time.monotonic()
                answer = await client.post(
                    bridge.url + "/v1/complete", json=legacy_body(), headers={"x-api-key": KEY}
                )
                assert answer.status_code == 200
                latencies.append(time.monotonic() - sent)
        assert not any(task.done() for task in slow), "a slow client ended early"
        await asyncio.gather(*slow)
        cut_after = time.monotonic() - started
    lines = bridge.log_path.read_text().splitlines()
    assert [line for line in lines if not line.startswith("{")] == []
    assert len(refusals(bridge, "headers not received")) == SLOW
    assert outcomes == ["timeout_error"] * SLOW
    assert len(latencies) >= 5
    print(
        f"slowloris: {SLOW} heads at 1 byte/s, header_timeout {timeout} s: all {SLOW} got "
        f"408 and were closed within {cut_after:.1f} s; meanwhile {len(latencies)} normal "
        f"calls, all 200, slowest {max(latencies) * 1000:.0f} ms"
    )


# --- the connection bound -----------------------------------------------------------

MAX = 5


async def test_past_max_client_connections_a_new_one_gets_a_legacy_503(
    upstream: str, tmp_path: Path
) -> None:
    """With max_client_connections 5 and 5 open: a 6th is answered 503 `overloaded_error`
    with retry-after and closed; the 5 keep being served; once one closes, a new one is
    served again."""
    env = {"BRIDGE_MAX_CLIENT_CONNECTIONS": str(MAX)}
    async with (
        bridge_process(upstream, tmp_path / "bridge.log", env) as bridge,
        contextlib.AsyncExitStack() as stack,
    ):
        await asyncio.sleep(0.2)  # the readiness probe's connection is gone
        held = [await stack.enter_async_context(Connection.to(bridge.url)) for _ in range(MAX)]
        for connection in held:
            await connection.send(head())
            assert (await connection.reply()).status == 200

        async with Connection.to(bridge.url) as extra:
            await extra.send(head())
            reply = await extra.reply()
            assert (reply.status, reply.headers["retry-after"]) == (503, "1")
            assert reply.headers["connection"] == "close"
            assert reply.error(retry=True) == {
                "type": "overloaded_error",
                "message": f"the bridge has {MAX} client connections open, its limit; "
                "retry shortly",
            }
            assert await extra.closed()

        body = complete_body()
        for connection in held:
            await connection.send(post("/v1/complete", body) + body)
            assert (await connection.reply()).status == 200

        held[0].writer.close()
        async with asyncio.timeout(BOUND):
            while True:  # the bridge sees the close a moment later
                async with Connection.to(bridge.url) as again:
                    await again.send(head())
                    if (await again.reply()).status == 200:
                        break
                await asyncio.sleep(0.05)
    refused = [e for e in bridge.log() if e.get("event") == "request.refused"]
    assert refused and {e["status"] for e in refused} == {503}


async def test_the_open_files_limit_is_raised_or_the_bound_lowered() -> None:
    """Every connection is an open file. A soft limit below the hard one is raised to it
    at start (logged); a hard limit too low for max_client_connections plus the upstream
    connections lowers max_client_connections to what fits, with a warning that says
    how to raise it."""
    command = f"ulimit -Sn 1024 && ulimit -Hn 1500 && exec {sys.executable} -m proxy serve"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    environ.update(
        BRIDGE_LOG_FORMAT="json", BRIDGE_UPSTREAM_URL="demo:", BRIDGE_PORT=str(free_port())
    )
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ
    )
    events = {}
    try:
        assert process.stdout is not None
        async with asyncio.timeout(15):
            async for line in process.stdout:
                event = json.loads(line)
                events[event["event"]] = event
                if event["event"] == "bridge.starting":
                    break
    finally:
        process.kill()
        await process.wait()
    raised = events["bridge.open_files_raised"]
    assert (raised["soft_limit_before"], raised["soft_limit"]) == (1024, 1500)
    lowered = events["bridge.client_connections_lowered"]
    assert lowered["level"] == "warning"
    assert (lowered["max_client_connections"], lowered["configured"]) == (1500 - 1000 - 64, 10_000)
    assert "11064" in lowered["hint"]


# --- slow on the upstream's side: never cut ------------------------------------------


async def test_a_stream_held_longer_than_both_timeouts_finishes(tmp_path: Path) -> None:
    """The timers stop once a request is read: an answer that takes three times
    header_timeout and body_timeout still arrives whole, even with the start of a next
    head pipelined behind it (no 408 can go into an answer); that head's 408 follows."""
    gated = gated_upstream()
    async with (
        serving(gated) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log", SHORT) as bridge,
        Connection.to(bridge.url) as connection,
    ):
        body = complete_body(stream=True)
        await connection.send(post("/v1/complete", body, V2) + body, b"GET /hea")
        await asyncio.sleep(3 * max(HEADER_TIMEOUT, BODY_TIMEOUT))
        gated.gate.set()
        async with asyncio.timeout(BOUND):
            received = await read_stream(connection)
        assert b" second" in received and b"event: error" not in received
        error, _ = await timed_out(connection, HEADER_TIMEOUT + BOUND)
    assert error["type"] == "timeout_error"


async def read_stream(connection: Connection) -> bytes:
    """A chunked stream answer's bytes, up to its last chunk."""
    received = b""
    while not received.endswith(b"0\r\n\r\n"):
        data = await connection.reader.read(65536)
        assert data, "the bridge closed the stream"
        received += data
    return received


STREAMS = 1000


async def test_1000_streams_held_open_at_once_all_finish_on_the_defaults(tmp_path: Path) -> None:
    """1,000 v2 streams, each on its own connection, all held open by the upstream at
    once (each sent its first text, then waits), then released: every one finishes with
    its whole text. Default settings: the connection bound is far above this."""
    gated = gated_upstream()
    opened = 0
    all_open = asyncio.Event()
    body = complete_body(stream=True)
    request = post("/v1/complete", body, V2, (b"connection", b"close")) + body

    async def stream(url: str) -> bytes:
        nonlocal opened
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            received = b""
            while b"first" not in received:
                data = await reader.read(65536)
                assert data, "the bridge closed the stream before its first text"
                received += data
            opened += 1
            if opened == STREAMS:
                all_open.set()
            return received + await reader.read()  # connection: close ends it
        finally:
            writer.close()

    async with (
        serving(gated) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log") as bridge,
    ):
        tasks = [asyncio.create_task(stream(bridge.url)) for _ in range(STREAMS)]
        try:
            async with asyncio.timeout(90):
                await all_open.wait()
            gated.gate.set()
            async with asyncio.timeout(60):
                answers = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
    assert len(answers) == STREAMS
    assert all(b" second" in a and b"event: error" not in a for a in answers)
    assert all(a.endswith(b"0\r\n\r\n") for a in answers)
    refused = [e for e in bridge.log() if e.get("event") == "request.refused"]
    assert refused == []
