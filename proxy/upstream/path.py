"""The path and query a pass-through call sends upstream: the client's, checked so that
the call cannot leave the base path of `upstream_url` (`https://gateway.internal/anthropic`).

A dot segment (`.` or `..`) would climb out of that base path: at the upstream client
(its URL library resolves them before sending), at the gateway, or at any server behind
it that decodes or normalises the path its own way. So a path holding one, in any
spelling, is refused with a 400, never resolved: legacy SDKs never send one (curl and
browsers resolve them before sending), so one that arrives is a probe or a bug.

The path is percent-decoded (up to MAX_DECODINGS times: `%2e`, `%2E`, `%252e`), read as
UTF-8 and NFKC-normalised (a fullwidth dot is a dot), then cut at `/`, `\\`, `;` (path
parameters: `..;/`), `?`, `#` (a server that decodes `/..%3f` before it splits off the
query sees `/..`) and NUL, wherever they came from (`%2f`, `%5c`). A piece with a dot
and nothing but dots and spaces is a dot segment. A path that passes goes upstream as the
client sent it; the query is never looked at.
"""

import re
import unicodedata
from urllib.parse import unquote_to_bytes

from proxy.errors import InvalidRequest

MAX_DECODINGS = 3  # triple encoding; a path still encoded past it is refused
_SEPARATORS = re.compile(r"[/\\;?#\x00]")


def upstream_target(raw_path: bytes, query: bytes = b"") -> str:
    """What follows the upstream base URL: `raw_path` and `query` as the client sent
    them; InvalidRequest if the path is not a path or could leave the base path."""
    if not raw_path.startswith(b"/"):  # the upstream host is only ever the configured one
        raise InvalidRequest("the request target must be a path")
    decoded = raw_path
    for _ in range(MAX_DECODINGS):
        decoded = unquote_to_bytes(decoded)
    if unquote_to_bytes(decoded) != decoded:
        raise InvalidRequest(f"the request path is percent-encoded more than {MAX_DECODINGS} times")
    try:
        text = unicodedata.normalize("NFKC", decoded.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequest("the request path is not UTF-8 once percent-decoded") from None
    if any(_is_dots(piece) for piece in _SEPARATORS.split(text)):
        raise InvalidRequest(
            "the request path has a dot segment ('.' or '..', in some encoding); "
            "send the path without it"
        )
    target = raw_path.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


def _is_dots(piece: str) -> bool:
    return "." in piece and not piece.replace(".", "").strip()
