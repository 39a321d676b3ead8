"""Messages API stream events as an upstream writes them on the wire, for the fakes and
for tests that script an upstream's bytes."""

import json
from typing import Any


def event(kind: str, /, *, ensure_ascii: bool = True, **data: Any) -> bytes:
    """One `event: KIND` / `data: {"type": KIND, ...}` event. `ensure_ascii=False` writes
    non-ASCII text as UTF-8 bytes, as the real API does, instead of \\u escapes."""
    payload = json.dumps({"type": kind, **data}, ensure_ascii=ensure_ascii)
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def delta(text: str, index: int = 0, *, ensure_ascii: bool = True) -> bytes:
    """A text delta of content block `index`."""
    text_delta = {"type": "text_delta", "text": text}
    return event("content_block_delta", ensure_ascii=ensure_ascii, index=index, delta=text_delta)
