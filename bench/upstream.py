"""A fake Messages API that is cheap enough never to be the benchmark's bottleneck.

Every answer is precomputed bytes, served by a raw asyncio protocol (uvloop when it is
installed). `POST /v1/messages` answers after `--delay-ms` with a fixed text: the short
answer (`--short-deltas` text deltas) when the request's `max_tokens` is below
LONG_MAX_TOKENS, else the long one (`--long-deltas`). With `"stream": true` it sends the
Messages SSE sequence, each event its own HTTP chunk: the events up to the first text
delta at once (so time to first byte is the first token's, as with a model), the rest
`--first-gap-ms` later in one write, or one event every `--event-gap-ms` (a model's pace).

With `--hold`, the rest waits for `POST /release` (or `--hold-ms`): that keeps many
streams open at once.
`GET /healthz` answers 200. One request at a time per connection (no client here
pipelines). Listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the SSE builder and the message body live in tests/fakes

from tests.fakes.factories import message  # noqa: E402
from tests.fakes.sse import message_events  # noqa: E402

LONG_MAX_TOKENS = 500
MODEL = "claude-sonnet-4-5"
MESSAGE_ID = "msg_bench0000000000000000"


def text_deltas(count: int) -> list[str]:
    """The answer's text, cut as a model streams it: "tok0", " tok1", " tok2", ..."""
    return ["tok0"] + [f" tok{i}" for i in range(1, count)]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(frozen=True)
class Answer:
    """One fixed answer: its text, and the exact bytes a client receives for it."""

    text: str
    deltas: int
    body: bytes  # the non-stream JSON message
    events: list[bytes]  # the SSE events of the stream, in order

    @property
    def sse(self) -> bytes:
        return b"".join(self.events)

    def response(self) -> bytes:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_bench\r\n"
        return head + b"content-length: %d\r\n\r\n" % len(self.body) + self.body

    def stream_parts(self) -> tuple[bytes, list[bytes]]:
        """The chunked stream: the head and events up to the first text delta, then the
        rest, one chunk per event (the last one ends the body)."""
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\nrequest-id: req_bench\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunks = [_chunk(event) for event in self.events]
        chunks[-1] += b"0\r\n\r\n"
        return head + b"".join(chunks[:3]), chunks[3:]


def answer(deltas: int) -> Answer:
    pieces = text_deltas(deltas)
    text = "".join(pieces)
    body = message(
        text, id=MESSAGE_ID, model=MODEL, usage={"input_tokens": 10, "output_tokens": deltas}
    )
    events = message_events(body, pieces, ping=False, compact=True)
    return Answer(text=text, deltas=deltas, body=_json(body), events=events)


def _plain(status: str, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )


OK = _plain("200 OK", b'{"status":"ok"}')
NOT_FOUND = _plain("404 Not Found", b'{"type":"error","error":{"type":"not_found_error"}}')
BAD = _plain("400 Bad Request", b'{"type":"error","error":{"type":"invalid_request_error"}}')


@dataclass(frozen=True)
class Pace:
    """When the parts of an answer go out, after --delay-ms: a JSON answer at once; a
    stream's first text delta at once, the rest `first_gap_s` later in one write, or
    event by event `event_gap_s` apart, or (hold) on POST /release or after `hold_s`."""

    delay_s: float = 0.0
    first_gap_s: float = 0.001
    event_gap_s: float = 0.0
    hold: bool = False
    hold_s: float = 60.0


class Upstream:
    """The answers and how to pace them; one per process."""

    def __init__(self, short: int, long: int, pace: Pace) -> None:
        self.pace = pace
        self.answers = {False: answer(short), True: answer(long)}
        self.responses: dict[tuple[bool, bool], tuple[bytes, list[bytes]]] = {}
        for is_long, a in self.answers.items():
            first, rest = a.stream_parts()
            self.responses[(is_long, True)] = (
                first,
                rest if pace.event_gap_s else [b"".join(rest)],
            )
            self.responses[(is_long, False)] = (a.response(), [])
        self.held: dict[asyncio.Transport, list[bytes]] = {}

    def handle(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        line = head[: head.find(b"\r\n")]
        if line.startswith(b"POST /v1/messages "):
            try:
                request = json.loads(body)
                is_long = request.get("max_tokens", 0) >= LONG_MAX_TOKENS
                stream = request.get("stream") is True
            except (ValueError, AttributeError, TypeError):
                transport.write(BAD)
                return
            first, rest = self.responses[(is_long, stream)]
            if self.pace.delay_s:
                loop = asyncio.get_running_loop()
                loop.call_later(self.pace.delay_s, self._answer, transport, first, rest)
            else:
                self._answer(transport, first, rest)
        elif line.startswith(b"GET /healthz "):
            transport.write(OK)
        elif line.startswith(b"POST /release "):
            self.release()
            transport.write(OK)
        else:
            transport.write(NOT_FOUND)

    def _answer(self, transport: asyncio.Transport, first: bytes, rest: list[bytes]) -> None:
        if transport.is_closing():
            return
        transport.write(first)
        if not rest:
            return
        loop = asyncio.get_running_loop()
        if self.pace.hold:
            self.held[transport] = rest
            loop.call_later(self.pace.hold_s, self._release_one, transport)
        else:
            loop.call_later(self.pace.first_gap_s, self._write, transport, rest, 0)

    def _write(self, transport: asyncio.Transport, parts: list[bytes], index: int) -> None:
        """Write parts[index], and the next ones event_gap_s apart."""
        if transport.is_closing():
            return
        transport.write(parts[index])
        if index + 1 < len(parts):
            loop = asyncio.get_running_loop()
            loop.call_later(self.pace.event_gap_s, self._write, transport, parts, index + 1)

    def _release_one(self, transport: asyncio.Transport) -> None:
        rest = self.held.pop(transport, None)
        if rest is not None and not transport.is_closing():
            self._write(transport, rest, 0)

    def release(self) -> None:
        for transport in list(self.held):
            self._release_one(transport)


class Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests with a content-length body (what every client here sends)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = bytearray()  # += on bytes would copy it all on every read
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.upstream.held.pop(self.transport, None)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            lower = head.lower()
            if b"\r\ntransfer-encoding:" in lower:  # chunked bodies: no client here sends them
                self.transport.write(BAD)
                self.transport.close()
                return
            start = lower.find(b"\r\ncontent-length:")
            length = 0
            if start >= 0:
                value_end = lower.find(b"\r\n", start + 2)
                length = int(lower[start + 17 : value_end if value_end >= 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.upstream.handle(self.transport, bytes(head), body)


async def serve(upstream: Upstream, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(upstream), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before answering")
    parser.add_argument("--short-deltas", type=int, default=10)
    parser.add_argument("--long-deltas", type=int, default=500)
    parser.add_argument(
        "--first-gap-ms", type=float, default=1.0, help="stream: from the first delta to the rest"
    )
    parser.add_argument(
        "--event-gap-ms", type=float, default=0.0, help="stream: send the rest event by event"
    )
    parser.add_argument("--hold", action="store_true", help="hold streams until POST /release")
    parser.add_argument("--hold-ms", type=float, default=60_000, help="release held streams after")
    args = parser.parse_args(argv)
    pace = Pace(
        delay_s=args.delay_ms / 1000,
        first_gap_s=args.first_gap_ms / 1000,
        event_gap_s=args.event_gap_ms / 1000,
        hold=args.hold,
        hold_s=args.hold_ms / 1000,
    )
    upstream = Upstream(args.short_deltas, args.long_deltas, pace)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(upstream, args.port))
    else:
        uvloop.run(serve(upstream, args.port))


if __name__ == "__main__":
    main()
