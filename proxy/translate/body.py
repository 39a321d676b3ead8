"""A legacy request body from its bytes: a JSON object of a bounded number of values.

Parsed JSON costs memory per value whatever its text: every string, number, array or
object is a Python object of 30 to 100 bytes, so 30 MB of `[[],[],...]` became 900 MB.
A legacy request has a few dozen values (stop_sequences is its one list), so the body's
values are counted before it is parsed, and a body of more than MAX_JSON_VALUES is
refused. Counted are its strings and, outside them, `[`, `{` and `,` (each value but a
container's first follows a comma): a bound, within twice the values. Only bytes
methods run over the body (a regex over 30 MB took half a second); a body with few of
these bytes at all is not looked at more closely.
"""

from typing import Any

import orjson

from proxy.errors import InvalidRequest

MAX_JSON_VALUES = 10_000
_STARTS = (b"[", b"{", b",")


def load_body(raw: bytes | bytearray) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not one, or has too many values."""
    bound = sum(raw.count(c) for c in _STARTS) + raw.count(b'"') // 2
    if bound > MAX_JSON_VALUES and _values(raw) > MAX_JSON_VALUES:
        raise InvalidRequest(
            f"request body has more than {MAX_JSON_VALUES} JSON values; a legacy request "
            "has a few dozen"
        )
    try:
        body = orjson.loads(raw)
    except ValueError as exc:  # also nesting past 1024 levels, and unpaired surrogates
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _values(raw: bytes | bytearray) -> int:
    """Strings, and `[`, `{`, `,` outside them (a bound on the values of valid JSON)."""
    # Escapes paired left to right, as JSON reads them: what stays of `"` delimits strings.
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = text.count(b'"') // 2
    count, start = strings, 0
    while count <= MAX_JSON_VALUES:  # at most one round per string
        opening = text.find(b'"', start)
        end = len(text) if opening < 0 else opening
        count += sum(text.count(c, start, end) for c in _STARTS)
        if opening < 0:
            break
        closing = text.find(b'"', opening + 1)
        if closing < 0:  # not valid JSON: orjson says so
            break
        start = closing + 1
    return count
