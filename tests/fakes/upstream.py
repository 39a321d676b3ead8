"""The fake Messages API (`POST /v1/messages`) the tests, the compat suite and the soak
run against: one fake, strict, deterministic and scripted.

Strict: it refuses what the real API refuses (tests/fakes/rules.py), so that a
translation bug in the bridge cannot hide behind a lenient fake. What it answers is
computed in tests/fakes/answers.py; this module serves it.

Deterministic: the reply is `"echo: " + <last user text>` (or the fake's `say` text), cut
at the first stop sequence or after `max_tokens` words (tokens are words here). The last
user text can script it:

    SAY <text>          reply exactly <text>
    FAIL <status>       answer <status> with the error envelope, `retry-after: 1` and
                        `x-should-retry: false`
    MIDSTREAM_ERROR     (streams) send an `overloaded_error` event after two text deltas
    FAULT <name> <tag>  (on the raw socket) misbehave below HTTP: tests/fakes/faults.py

The gate: made with `hold="text"`, every answer waits for `gate` after its first text
delta (a JSON answer after its head); with `hold="headers"`, before its head too.
`called` is set by every request, `closed` when the bridge hangs up on an answer.

One fake, two ways to serve it: as an ASGI app (`serving(FakeUpstream())`, or in process)
or on a raw socket (`async with FakeUpstream() as upstream:` ... `upstream.url`), which
adds the faults. Every request is recorded in `requests` (a fault's also in `exchanges`).
"""

import asyncio
import contextlib
import json
import re
from typing import Literal, Protocol

from starlette.types import Receive, Scope, Send

from tests.fakes.answers import Answer, Received, Script, respond
from tests.fakes.faults import FAULTS, Exchange
from tests.fakes.raw_server import RawServer, Wire, read_request

GAP = 0.002  # seconds between stream events: separate chunks on the wire, as a real stream


class Out(Protocol):
    """Where an answer goes: an ASGI `send`, or a raw socket."""

    async def head(self, answer: Answer) -> None: ...
    async def part(self, data: bytes, answer: Answer) -> None: ...
    async def end(self, answer: Answer) -> None: ...


class FakeUpstream(RawServer):
    """The fake, with its script (`Script`) and its gate; an ASGI app, and a raw server
    while entered."""

    def __init__(
        self,
        *,
        say: str | None = None,
        hold: Literal["headers", "text"] | None = None,
        key: bool = True,
        ping: bool = True,
    ) -> None:
        super().__init__()
        self.script, self.hold = Script(say, key, ping), hold
        self.requests: list[Received] = []
        self.exchanges: dict[str, Exchange] = {}
        self.called = asyncio.Event()
        self.gate = asyncio.Event()
        self.closed = asyncio.Event()
        if hold is None:
            self.gate.set()

    def receive(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Received:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        request = Received(method, path, headers, body)
        self.requests.append(request)
        self.called.set()
        return request

    async def play(self, request: Received, out: Out) -> None:
        """Send the answer to `request`, holding it at the gate."""
        answer = respond(request, len(self.requests), self.script)
        if self.hold == "headers":
            await self.gate.wait()
        await out.head(answer)
        for i, part in enumerate(answer.parts):
            if i == answer.gate_at:
                await self.gate.wait()
            await out.part(part, answer)
            if answer.stream:
                await asyncio.sleep(GAP)
        await out.end(answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        request = self.receive(scope["method"], scope["path"], headers, raw)
        watcher = asyncio.create_task(self._watch_asgi(receive), name="watch the bridge")
        try:
            await self.play(request, AsgiOut(send))
        finally:
            watcher.cancel()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(0)
        received = await read_request(reader)
        if received is None:
            return  # connected and left without a request
        method, target, headers, raw = received
        request = self.receive(method, target.partition("?")[0], headers, raw)
        wire = Wire(writer)
        exchange = None
        if marker := re.search(rb"FAULT (\w+) (\w+)", raw):
            fault, tag = marker[1].decode(), marker[2].decode()
            exchange = Exchange(fault, tag, method, target, headers, request.body)
            self.exchanges[tag] = exchange
        watcher = asyncio.create_task(self._watch_raw(reader, exchange), name="watch the bridge")
        try:
            if exchange is None:
                await self.play(request, RawOut(wire))
            else:
                await FAULTS.get(exchange.fault, FAULTS["unknown"])(exchange, wire)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_asgi(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.closed.set()

    async def _watch_raw(self, reader: asyncio.StreamReader, exchange: Exchange | None) -> None:
        """The bridge sends nothing after its request: any read ends when it hangs up."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        self.closed.set()
        if exchange is not None:
            exchange.closed.set()
            exchange.proceed.set()  # a fault waiting for the go wakes up, finds nobody there


class AsgiOut:
    def __init__(self, send: Send) -> None:
        self.send = send

    async def head(self, answer: Answer) -> None:
        headers = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        if not answer.stream:
            headers.append((b"content-length", str(len(answer.parts[0])).encode()))
        await self.send(
            {"type": "http.response.start", "status": answer.status, "headers": headers}
        )

    async def part(self, data: bytes, answer: Answer) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, answer: Answer) -> None:
        await self.send({"type": "http.response.body", "body": b""})


class RawOut:
    """HTTP/1.1 on the raw socket: a JSON body with its length, a stream chunked."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    async def head(self, answer: Answer) -> None:
        if answer.stream:
            framing = {"transfer-encoding": "chunked"}
        else:
            framing = {"content-length": str(len(answer.parts[0]))}
        await self.wire.head(answer.status, {**answer.headers, **framing})

    async def part(self, data: bytes, answer: Answer) -> None:
        await (self.wire.chunk(data) if answer.stream else self.wire.send(data))

    async def end(self, answer: Answer) -> None:
        if answer.stream:
            await self.wire.end()


def gated_upstream(hold: Literal["headers", "text"] = "text") -> FakeUpstream:
    """The fake as the tests of a held answer use it: it says "first second" (no ping
    before it), holds at its gate and takes calls without a key."""
    return FakeUpstream(say="first second", hold=hold, key=False, ping=False)
