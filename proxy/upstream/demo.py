"""A built-in, deterministic stand-in for the Messages API (`--upstream-url demo:`).

No key, no network: the README quick start and users' own CI tests of their legacy
apps run against it. It answers `POST /v1/messages` with a fixed sentence that quotes
the last user turn, honouring max_tokens (words), stop_sequences and stream.
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

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


class DemoTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/v1/messages":
            return _error(404, "not_found_error", f"the demo upstream has no {request.url.path}")
        try:
            body = json.loads(await request.aread())
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
        headers = {"request-id": "req_demo"}
        if not body.get("stream"):
            return httpx.Response(200, json=message, headers=headers)
        return httpx.Response(
            200,
            headers={**headers, "content-type": "text/event-stream"},
            stream=_DemoStream(message, text),
        )


class _DemoStream(httpx.AsyncByteStream):
    def __init__(self, message: dict[str, Any], text: str) -> None:
        self._message, self._text = message, text

    async def __aiter__(self) -> AsyncIterator[bytes]:
        start = {**self._message, "content": [], "stop_reason": None, "stop_sequence": None}
        yield _event("message_start", {"message": start})
        yield _event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for at, word in enumerate(self._text.split(" ")):
            piece = word if at == 0 else " " + word
            yield _event(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
            )
        yield _event("content_block_stop", {"index": 0})
        delta = {k: self._message[k] for k in ("stop_reason", "stop_sequence")}
        yield _event("message_delta", {"delta": delta, "usage": self._message["usage"]})
        yield _event("message_stop", {})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"type": "error", "error": {"type": kind, "message": message}}
    )
