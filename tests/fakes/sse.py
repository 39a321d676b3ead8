"""Messages API stream events as an upstream writes them on the wire: the one builder for
the fake upstream, the benchmark's upstream and the tests that script an upstream's bytes."""

import json
from collections.abc import Sequence
from typing import Any

from tests.fakes import factories


def event(kind: str, /, *, ensure_ascii: bool = True, compact: bool = False, **data: Any) -> bytes:
    """One `event: KIND` / `data: {"type": KIND, ...}` event. `ensure_ascii=False` writes
    non-ASCII text as UTF-8 bytes, as the real API does, instead of \\u escapes; `compact`
    leaves out the spaces after `,` and `:`."""
    separators = (",", ":") if compact else None
    payload = json.dumps({"type": kind, **data}, ensure_ascii=ensure_ascii, separators=separators)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def delta(text: str, index: int = 0, *, ensure_ascii: bool = True, compact: bool = False) -> bytes:
    """A text delta of content block `index`."""
    text_delta = {"type": "text_delta", "text": text}
    return event(
        "content_block_delta",
        ensure_ascii=ensure_ascii,
        compact=compact,
        index=index,
        delta=text_delta,
    )


def message_events(
    message: dict[str, Any],
    pieces: Sequence[str],
    *,
    ping: bool = True,
    ensure_ascii: bool = True,
    compact: bool = False,
) -> list[bytes]:
    """The whole stream of a Messages response body `message` whose text comes in
    `pieces`, one event per item: message_start, content_block_start, (ping), a delta per
    piece, content_block_stop, message_delta, message_stop."""
    options: dict[str, Any] = {"ensure_ascii": ensure_ascii, "compact": compact}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    stop = {key: message[key] for key in ("stop_reason", "stop_sequence")}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    block = {"type": "text", "text": ""}
    return [
        event("message_start", message=start, **options),
        event("content_block_start", index=0, content_block=block, **options),
        *([event("ping", **options)] if ping else []),
        *(delta(piece, **options) for piece in pieces),
        event("content_block_stop", index=0, **options),
        event("message_delta", delta=stop, usage=usage, **options),
        event("message_stop", **options),
    ]


# The opening (message_start, content_block_start) and the ending (content_block_stop,
# message_delta, message_stop) of a stream, for tests that write the deltas between by hand.
_SHORT = factories.message("", id="msg_s", usage={"input_tokens": 1, "output_tokens": 1})
HEAD = b"".join(message_events(_SHORT, [], ping=False)[:2])
TAIL = b"".join(message_events(_SHORT, [], ping=False)[2:])
