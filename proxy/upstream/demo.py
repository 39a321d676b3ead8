"""A built-in, deterministic stand-in for the Messages API (`--upstream-url demo:`).

No key, no network: the README quick start and users' own CI tests of their legacy
apps run against it. It answers `POST /v1/messages` with a fixed sentence that quotes
the last user turn, honouring max_tokens (words), stop_sequences and stream.
"""

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from proxy.translate.sse import encode
from proxy.upstream.answer import Answer, answer
from proxy.upstream.transport import Request

_HEADERS = [(b"request-id", b"req_demo")]
_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream")
_INTRO = "Hello from the complete-bridge demo upstream. You said:"


def demo_reply(body: dict[str, Any]) -> tuple[str, str, str | None, int]:
    """(text, stop_reason, stop_sequence, output tokens) for a Messages request body."""
    last_user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    words = f"{_INTRO} {last_user}".split(" ")
    limit = body["max_tokens"]
    text, reason = " ".join(words[:limit]), "end_turn" if len(words) <= limit else "max_tokens"
    stop_sequence = None
    for stop in body.get("stop_sequences", []):
        at = text.find(stop)
        if at >= 0 and (stop_sequence is None or at < text.find(stop_sequence)):
            stop_sequence = stop
    if stop_sequence is not None:
        text, reason = text[: text.find(stop_sequence)], "stop_sequence"
    return text, reason, stop_sequence, len(text.split())


async def demo_upstream(request: Request) -> Answer:
    """The in-memory transport's handler for `demo:`."""
    path = urlsplit(request.url).path
    if request.method != "POST" or path != "/v1/messages":
        return _error(404, "not_found_error", f"the demo upstream has no {path}")
    try:
        assert isinstance(request.content, bytes)  # the in-memory transport reads it whole
        body = json.loads(request.content)
        text, reason, stop_sequence, tokens = demo_reply(body)
    except (ValueError, KeyError, TypeError, StopIteration):
        return _error(400, "invalid_request_error", "the demo upstream could not read that")
    message = {
        "id": "msg_demo",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": len(json.dumps(body["messages"]).split()),
            "output_tokens": tokens,
        },
    }
    if not body.get("stream"):
        return answer(200, [*_HEADERS, _JSON], json.dumps(message).encode())
    return answer(200, [*_HEADERS, _SSE], _stream(message, text))


async def _stream(message: dict[str, Any], text: str) -> AsyncIterator[bytes]:
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    yield _event("message_start", {"message": start})
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for at, word in enumerate(text.split(" ")):
        piece = word if at == 0 else " " + word
        yield _event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
        )
    yield _event("content_block_stop", {"index": 0})
    delta = {k: message[k] for k in ("stop_reason", "stop_sequence")}
    yield _event("message_delta", {"delta": delta, "usage": message["usage"]})
    yield _event("message_stop", {})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return encode(json.dumps({"type": kind, **data}).encode(), kind)


def _error(status: int, kind: str, message: str) -> Answer:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return answer(status, [_JSON], json.dumps(body).encode())
