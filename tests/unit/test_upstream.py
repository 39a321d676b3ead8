import aiohttp
import httpx
import pytest

from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.upstream.answer import upstream_error
from proxy.upstream.headers import passthrough_headers, relayed_headers, translated_headers


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (httpx.ConnectError("x"), UpstreamUnreachable, "upstream unreachable: could not connect"),
        (
            httpx.ConnectTimeout("x"),
            UpstreamUnreachable,
            "upstream unreachable: connection timed out",
        ),
        (httpx.ReadTimeout("x"), UpstreamTimeout, "upstream did not answer in time"),
        (httpx.ReadError("x"), UpstreamUnreachable, "upstream connection lost"),
        (httpx.RemoteProtocolError("x"), UpstreamUnreachable, "upstream connection lost"),
        (aiohttp.ServerDisconnectedError(), UpstreamUnreachable, "upstream connection lost"),
        (aiohttp.SocketTimeoutError(), UpstreamTimeout, "upstream did not answer in time"),
        (
            aiohttp.ConnectionTimeoutError(),
            UpstreamUnreachable,
            "upstream unreachable: connection timed out",
        ),
        (aiohttp.ClientPayloadError(), UpstreamUnreachable, "upstream connection lost"),
    ],
)
def test_upstream_errors_map_by_what_really_happened(
    exc: Exception, kind: type[Exception], message: str
) -> None:
    """Unreachable and lost are 502 api_error, too slow is 504 timeout_error."""
    error = upstream_error(exc)
    assert type(error) is kind
    assert error.message == message


def test_translated_headers_forward_only_the_allow_list() -> None:
    """Keys, beta flags and user agent go upstream; the version is always 2023-06-01."""
    raw = [
        (b"x-api-key", b"k"),
        (b"Authorization", b"Bearer t"),
        (b"anthropic-beta", b"b"),
        (b"anthropic-version", b"2023-01-01"),
        (b"cookie", b"c"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"content-length", b"10"),
    ]
    assert translated_headers(raw) == [
        (b"x-api-key", b"k"),
        (b"Authorization", b"Bearer t"),
        (b"anthropic-beta", b"b"),
        (b"anthropic-version", b"2023-06-01"),
        (b"content-type", b"application/json"),
    ]


def test_passthrough_drops_hop_by_hop_and_spoofable_headers() -> None:
    """Hop-by-hop headers (also those `connection` names), Host, and what a client could
    claim about who is calling never cross the bridge."""
    raw = [
        (b"Connection", b"close, X-Secret-Hop"),
        (b"x-secret-hop", b"h"),
        (b"host", b"x"),
        (b"TE", b"trailers"),
        (b"Proxy-Authorization", b"Basic eA=="),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"x-forwarded-host", b"evil.test"),
        (b"Forwarded", b"for=10.0.0.1"),
        (b"x-real-ip", b"10.0.0.1"),
        (b"via", b"1.1 p"),
        (b"x-a", b"1"),
        (b"anthropic-beta", b"b"),
    ]
    assert passthrough_headers(raw) == [(b"x-a", b"1"), (b"anthropic-beta", b"b")]


def test_relayed_headers() -> None:
    """request-id, retry headers and rate-limit headers come back; others do not."""
    response = httpx.Response(
        200,
        headers=[
            (b"request-id", b"r"),
            (b"anthropic-ratelimit-tokens-remaining", b"5"),
            (b"retry-after", b"1"),
            (b"set-cookie", b"s"),
        ],
    )
    assert relayed_headers(response.headers.raw) == [
        (b"request-id", b"r"),
        (b"anthropic-ratelimit-tokens-remaining", b"5"),
        (b"retry-after", b"1"),
    ]
