"""The fault scripts of the fake upstream (tests/fakes/upstream.py), on its raw socket.

Raw, because several faults live below HTTP: a reset, a cut body, bytes sent one at a
time. A request picks its fault with a marker in its prompt, which reaches the fake
inside the JSON body: `FAULT <name> <tag>`; the tag names the exchange for the test.

    async with FakeUpstream() as upstream:     # listening on 127.0.0.1
        ...  # a legacy prompt "\\n\\nHuman: FAULT stall_body t1\\n\\nAssistant:"
        exchange = upstream.exchanges["t1"]    # what it received; when the bridge left

Every answer starts like a real one (fault_answer.py): a stream sends `HEAD` (up to the
deltas "Hello" and " wörld"), a body the first half of `MESSAGE`. Mid-stream faults then
wait for `exchange.proceed` (set by the test once its client has seen that text: v2
" wörld", v1 the line " Hello", sent once " wörld" has come), so that no fault overtakes
the text. Faults that keep the connection open (`exchange.held`) wait until the bridge
closes it (`exchange.closed`).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.fault_answer import (
    ANSWER_HEADERS,
    HEAD,
    HUGE,
    MESSAGE,
    REST,
    STATUS_FAULTS,
    STREAM_HEAD,
    delta,
    envelope,
    event,
    json_head,
    message,
)
from tests.fakes.raw_server import Wire, chunked


@dataclass
class Exchange:
    """One request as the fake received it, and what became of its connection."""

    fault: str
    tag: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    proceed: asyncio.Event = field(default_factory=asyncio.Event)  # also set on close
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the bridge hung up first
    held: bool = False  # the fault kept the connection open for the bridge to close

    async def hold(self) -> None:
        """Keep the connection open until the bridge closes it."""
        self.held = True
        await self.closed.wait()

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


Fault = Callable[[Exchange, Wire], Awaitable[None]]
FAULTS: dict[str, Fault] = {}


def fault(function: Fault) -> Fault:
    FAULTS[function.__name__] = function
    return function


async def start(ex: Exchange, wire: Wire) -> None:
    """A normal beginning: a stream's HEAD (then wait for the go), or half the body."""
    if ex.stream:
        await wire.send(STREAM_HEAD)
        await wire.chunk(HEAD)
        await ex.proceed.wait()
    else:
        await wire.send(json_head(len(MESSAGE)))
        await wire.send(MESSAGE[: len(MESSAGE) // 2])


async def start_chunked(ex: Exchange, wire: Wire) -> None:
    """A normal beginning in chunked framing: a stream's (then wait for the go), or half
    a JSON body in one chunk."""
    if ex.stream:
        await start(ex, wire)
    else:
        await wire.send(json_head(None))
        await wire.chunk(MESSAGE[: len(MESSAGE) // 2])


@fault
async def stall_headers(ex: Exchange, wire: Wire) -> None:
    await ex.hold()


@fault
async def close_before_headers(ex: Exchange, wire: Wire) -> None:
    pass  # the connection closes with a FIN


@fault
async def reset_before_headers(ex: Exchange, wire: Wire) -> None:
    wire.reset()


@fault
async def stall_body(ex: Exchange, wire: Wire) -> None:
    await start(ex, wire)
    await ex.hold()


@fault
async def cut_clean(ex: Exchange, wire: Wire) -> None:
    """A stream's HTTP body ends properly before message_stop; a body short of its length."""
    await start(ex, wire)
    if ex.stream:
        await wire.end()


@fault
async def cut_mid_event(ex: Exchange, wire: Wire) -> None:
    """The HTTP body ends properly inside an event's data line."""
    await start(ex, wire)
    await wire.chunk(REST[:40])
    await wire.end()


@fault
async def eof_mid_chunk(ex: Exchange, wire: Wire) -> None:
    """A chunked body closed (FIN) without its last chunk."""
    await start_chunked(ex, wire)


@fault
async def bad_chunk_size(ex: Exchange, wire: Wire) -> None:
    """A chunk-size line that is not hex, mid-answer; then the connection closes."""
    await start_chunked(ex, wire)
    await wire.send(b"zz\r\n")


@fault
async def bad_chunk_size_held(ex: Exchange, wire: Wire) -> None:
    """The same, and the connection stays open."""
    await start_chunked(ex, wire)
    await wire.send(b"zz\r\n")
    await ex.hold()


@fault
async def chunk_overrun_held(ex: Exchange, wire: Wire) -> None:
    """A chunk longer than its size line says (no CRLF where it should end); held open."""
    await start_chunked(ex, wire)
    await wire.send(b"3\r\nabcXY")
    await ex.hold()


@fault
async def reset(ex: Exchange, wire: Wire) -> None:
    await start(ex, wire)
    wire.reset()


@fault
async def error_event(ex: Exchange, wire: Wire) -> None:
    await start(ex, wire)
    await wire.chunk(event("error", error={"type": "overloaded_error", "message": "Overloaded"}))
    await ex.hold()


@fault
async def malformed(ex: Exchange, wire: Wire) -> None:
    """Bad JSON in a data line; a body that is not JSON."""
    if ex.stream:
        await start(ex, wire)
        await wire.chunk(b'event: content_block_delta\ndata: {"type": "content_block_delta",\n\n')
        await ex.hold()
    else:
        body = b'{"type": "message", "content": ['
        await wire.send(json_head(len(body)))
        await wire.send(body)


@fault
async def garbage_lines(ex: Exchange, wire: Wire) -> None:
    """A correct stream with lines an SSE parser must ignore: comments, unknown fields,
    lines without a colon, id and retry."""
    junk = b": keep-alive\nnot a field\nid: 7\nretry: 1000\nx-weird: field\n"
    await wire.send(STREAM_HEAD)
    await wire.chunk((HEAD + REST).replace(b"\n\n", b"\n" + junk + b"\n"))
    await wire.end()


@fault
async def stall_after_stop(ex: Exchange, wire: Wire) -> None:
    """A complete answer, then the connection stays open (a stream without its last chunk)."""
    if ex.stream:
        await wire.send(STREAM_HEAD)
        await wire.chunk(HEAD + REST)
    else:
        await wire.send(json_head(len(MESSAGE)))
        await wire.send(MESSAGE)
    await ex.hold()


@fault
async def slow(ex: Exchange, wire: Wire) -> None:
    """A correct answer, one byte per write: its head at once, its body in gaps of ~1 ms
    that add up to more than a second (longer than the idle_timeout the tests set)."""
    if ex.stream:
        head, body = STREAM_HEAD, chunked(HEAD) + chunked(REST) + b"0\r\n\r\n"
    else:
        head, body = json_head(len(MESSAGE)), MESSAGE
    await wire.dribble(head, 0)
    await wire.dribble(body, 1.1)


@fault
async def huge(ex: Exchange, wire: Wire) -> None:
    """40 MiB of text: one body, or one data line in a stream."""
    if ex.stream:
        await start(ex, wire)
        await wire.chunk(delta("a" * HUGE))
        await wire.chunk(REST)
        await wire.end()
    else:
        body = message("a" * HUGE)
        await wire.send(json_head(len(body)))
        await wire.send(body)


def _status_fault(status: int, body: bytes, headers: dict[str, str]) -> Fault:
    async def answer(ex: Exchange, wire: Wire) -> None:
        sent = {"content-type": "application/json", **ANSWER_HEADERS, "set-cookie": "s=1"}
        await wire.head(status, {**sent, **headers, "content-length": str(len(body))})
        await wire.send(body)

    return answer


for _name, _args in STATUS_FAULTS.items():
    FAULTS[_name] = _status_fault(*_args)
# Statuses no final answer has: HTTP has none past 599; 101 only answers an upgrade.
FAULTS["status_600"] = _status_fault(600, envelope("api_error", "six hundred"), {})
FAULTS["status_000"] = _status_fault(0, envelope("api_error", "zero"), {})
FAULTS["status_101"] = _status_fault(101, b"", {"upgrade": "websocket"})
FAULTS["unknown"] = _status_fault(400, envelope("invalid_request_error", "no FAULT marker"), {})
