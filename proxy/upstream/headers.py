"""The header policy at the upstream: what a call forwards to it, what an answer relays
back to the client, what never crosses (client-address and hop-by-hop headers), and which
answer headers are not valid HTTP. Pure: headers in, headers out.

Headers stay bytes end to end: nothing a client or upstream sends can fail to re-encode.
"""

import re
from collections.abc import Iterable

MESSAGES_VERSION = "2023-06-01"

RawHeaders = list[tuple[bytes, bytes]]

# What a translated request forwards from the legacy client.
_FORWARDED = frozenset({b"x-api-key", b"authorization", b"anthropic-beta", b"user-agent"})
# What a client could spoof to the upstream about who is calling and from where: never
# passed on, in either direction (nor any name starting `x-forwarded`). Listed in
# docs/limits-and-faults.md, What reaches the upstream.
CLIENT_ADDRESS_HEADERS = frozenset(
    {
        b"forwarded", b"via", b"x-real-ip", b"x-client-ip", b"client-ip", b"true-client-ip",
        b"cf-connecting-ip", b"cf-connecting-ipv6", b"fastly-client-ip", b"x-originating-ip",
        b"x-cluster-client-ip", b"x-remote-addr", b"x-remote-ip", b"x-original-forwarded-for",
        b"x-envoy-external-address", b"x-azure-clientip", b"x-azure-socketip",
        b"x-appengine-user-ip", b"x-proxyuser-ip", b"wl-proxy-client-ip", b"proxy-client-ip",
    }
)  # fmt: skip
_CLIENT_ADDRESS_PREFIX = b"x-forwarded"
# Never forwarded on a pass-through: hop-by-hop (RFC 9110 7.6.1), what the transport sets,
# and `expect`: the bridge answers a client's `100-continue` itself (the server does, as
# the body is read) and never waits on the upstream for one.
_NOT_FORWARDED = CLIENT_ADDRESS_HEADERS | {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
    b"expect",
}  # fmt: skip
# Response headers a translated answer keeps: SDKs read them for ids and retries.
_RELAYED = frozenset({b"request-id", b"retry-after", b"retry-after-ms", b"x-should-retry"})
_RELAYED_PREFIX = b"anthropic-ratelimit-"

# What no header may hold on the client's wire (RFC 9110 5.1, 5.5; the server refuses to
# write it): an upstream answer with one is a bad answer, not a crash mid-response.
_BAD_NAME = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"/?]')
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def translated_headers(client: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """Headers for the upstream Messages call, from the legacy client's."""
    headers = [(name, value) for name, value in client if name.lower() in _FORWARDED]
    headers.append((b"anthropic-version", MESSAGES_VERSION.encode()))
    headers.append((b"content-type", b"application/json"))
    return headers


def passthrough_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """All but hop-by-hop headers (also those `connection` names), `expect`, and
    client-address ones."""
    headers = list(headers)
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in _NOT_FORWARDED
        and lower not in named
        and not lower.startswith(_CLIENT_ADDRESS_PREFIX)
    ]


def relayed_headers(headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The upstream response headers a legacy client gets back."""
    return [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) in _RELAYED or lower.startswith(_RELAYED_PREFIX)
    ]


def has_invalid_header(headers: RawHeaders) -> bool:
    """Whether any header is one the client's wire cannot carry. (The patterns match one
    character: all names, then all values, are searched joined, one search each.)"""
    if not headers:
        return False
    names, values = zip(*headers, strict=True)
    return bool(_BAD_NAME.search(b"".join(names)) or _BAD_VALUE.search(b"".join(values)))
