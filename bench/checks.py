"""What makes an answer right: every answer the benchmark gets goes through one of these.

A check takes the status and the (decoded) body, and returns the number of upstream SSE
events the right answer carries (0 for a JSON body), or None when the answer is wrong.
Events are counted upstream for every target: a v1 stream may carry several deltas in
one line, so its own lines would undercount the work.
"""

import json
from collections.abc import Callable
from typing import Any

Check = Callable[[int, bytes], int | None]


def _safe(check: Check) -> Check:
    """An answer the check cannot even parse is a wrong answer, not a crash."""

    def safe(status: int, body: bytes) -> int | None:
        try:
            return check(status, body)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return None

    return safe


def exact(expected: bytes, events: int) -> Check:
    """The answer must be these bytes (the upstream's, relayed unchanged)."""

    def check(status: int, body: bytes) -> int | None:
        return events if status == 200 and body == expected else None

    return check


def _is_last(event: dict[str, Any], want: str, text: str) -> bool:
    return (
        event.get("type") == "completion"
        and text == want
        and event.get("stop_reason") == "stop_sequence"
        and event.get("stop") == "\n\nHuman:"
    )


def completion(text: str) -> Check:
    """A legacy JSON completion of `text`, with the leading space and the natural stop."""
    want = " " + text

    def check(status: int, body: bytes) -> int | None:
        answer = json.loads(body)
        return 0 if status == 200 and _is_last(answer, want, answer["completion"]) else None

    return _safe(check)


def v2_stream(text: str, events_in: int) -> Check:
    """Named `completion` events whose texts add up to the answer; the last one stops."""
    want = " " + text

    def check(status: int, body: bytes) -> int | None:
        events = body.split(b"\n\n")
        if status != 200 or events.pop() != b"" or not events:
            return None
        parts: list[str] = []
        last: dict[str, Any] = {}
        for event in events:
            name, _, data = event.partition(b"\ndata: ")
            if name == b"event: ping":
                continue
            if name != b"event: completion" or (last and last["stop_reason"] is not None):
                return None  # every event before the last says `"stop_reason": null`
            last = json.loads(data)
            parts.append(last["completion"])
        return events_in if _is_last(last, want, "".join(parts)) else None

    return _safe(check)


def v1_stream(text: str, events_in: int) -> Check:
    """Data-only events carrying the whole text so far; the last one stops; then [DONE]."""
    want = " " + text

    def check(status: int, body: bytes) -> int | None:
        events = body.split(b"\n\n")
        if status != 200 or events.pop() != b"" or len(events) < 2:
            return None
        if events.pop() != b"data: [DONE]":
            return None
        *before, final = events
        for event in before:  # TypeScript 0.2-0.4 need `"stop_reason":null` on each
            ok = event.startswith(b"data: {") and b'"stop_reason":null' in event
            if not ok and event != b"event: ping\ndata: {}":
                return None
        last = json.loads(final.removeprefix(b"data: "))
        return events_in if _is_last(last, want, last["completion"]) else None

    return _safe(check)
