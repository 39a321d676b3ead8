"""The answer every fault of the fake upstream (tests/fakes/faults.py) starts from, as
bytes: its headers, its stream (`HEAD`, then `REST`), its JSON body (`MESSAGE`), and the
answers of the status faults."""

import json
from typing import Any

from tests.fakes import factories, sse
from tests.fakes.raw_server import response_head

REQUEST_ID = "req_fault"
# Sent with every answer: kept ones a legacy client must see, and one it must not.
ANSWER_HEADERS = {
    "request-id": REQUEST_ID,
    "anthropic-ratelimit-requests-remaining": "41",
    "x-fault-private": "1",
}
HUGE = 40 * 1024 * 1024  # bytes of text in the "huge" answers: past any sane answer


def event(kind: str, **data: Any) -> bytes:
    """A stream event, its text in UTF-8 (multi-byte characters on the wire)."""
    return sse.event(kind, ensure_ascii=False, **data)


def delta(text: str) -> bytes:
    return sse.delta(text, ensure_ascii=False)


START = {"id": "msg_fault", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5"}
TEXT = "Hello wörld ✓"
PIECES = ["Hello", " wörld", " ✓"]  # multi-byte characters on a byte-by-byte wire


def body(text: str = TEXT) -> dict[str, Any]:
    """The Messages response body with `text`."""
    return factories.message(text, **START, usage={"input_tokens": 9, "output_tokens": 4})


def message(text: str = TEXT) -> bytes:
    return json.dumps(body(text), ensure_ascii=False).encode()


def stream(text: str = TEXT, pieces: list[str] | None = None) -> list[bytes]:
    """The events of the stream of `text`, sent in `pieces` (the whole text by default)."""
    return sse.message_events(body(text), pieces or [text], ensure_ascii=False)


HEAD = b"".join(stream(TEXT, PIECES)[:5])  # up to the deltas "Hello" and " wörld"
REST = b"".join(stream(TEXT, PIECES)[5:])
MESSAGE = message()


def envelope(kind: str, text: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": text}}).encode()


# name -> (status, body, headers beside ANSWER_HEADERS)
STATUS_FAULTS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "status_429": (
        429,
        envelope("rate_limit_error", "Number of requests has exceeded your rate limit"),
        {
            "retry-after": "7",
            "retry-after-ms": "6500",
            "anthropic-ratelimit-requests-remaining": "0",
        },
    ),
    "status_500": (500, envelope("api_error", "Internal server error"), {}),
    "status_503": (503, envelope("api_error", "Service unavailable"), {"retry-after-ms": "1500"}),
    "status_503_html": (
        503,
        b"<html><body><h1>503 Service Unavailable</h1></body></html>\n",
        {"retry-after": "30", "content-type": "text/html"},
    ),
    "status_504": (
        504,
        envelope("timeout_error", "Request timed out"),
        {"x-should-retry": "false"},
    ),
    "status_529": (
        529,
        envelope("overloaded_error", "Overloaded"),
        {"x-should-retry": "true", "retry-after-ms": "250"},
    ),
}


def json_head(length: int | None) -> bytes:
    """A JSON answer's head: with its content-length, or chunked when None."""
    if length is None:
        framing = {"transfer-encoding": "chunked"}
    else:
        framing = {"content-length": str(length)}
    return response_head(200, {"content-type": "application/json", **framing, **ANSWER_HEADERS})


STREAM_HEAD = response_head(
    200,
    {
        "content-type": "text/event-stream; charset=utf-8",
        "transfer-encoding": "chunked",
        **ANSWER_HEADERS,
    },
)
