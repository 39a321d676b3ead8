"""A pass-through call never leaves the base path of `upstream_url`: every spelling of a
dot segment is refused with a 400 before anything is sent; every other path goes
upstream under the base path, with the bridge's key. Driven through a real bridge
process by raw sockets (an HTTP client would resolve the dot segments itself), against a
raw-socket upstream that records the request line it received."""

import asyncio
import json
from pathlib import Path

import pytest

from proxy.errors import InvalidRequest
from proxy.upstream.path import MAX_DECODINGS, upstream_target
from tests.fakes.raw_client import Connection, head
from tests.fakes.raw_server import RawServer
from tests.fakes.servers import bridge_process

BASE = "/anthropic"
UPSTREAM_KEY = "sk-ant-bridge-upstream-key"
CLIENT_KEY = "bridge-issued-client-key"

# What a client sends -> what reaches the upstream after the base path (None: refused
# with a 400, nothing sent). aiohttp's URL library writes escapes in upper case, a
# literal backslash as %5C and an escaped unreserved character as itself (RFC 3986
# 6.2.2: the same URL to the upstream).
VARIANTS: dict[bytes, bytes | None] = {
    # the examples
    b"/v1/../../secret": None,
    b"/%2e%2e/%2e%2e/x": None,
    b"/./../x": None,
    b"/.%2e/x": None,
    b"/..": None,
    # case, mixing, position
    b"/%2E%2E/x": None,
    b"/v1/%2e%2E/x": None,
    b"/v1/.%2E/x": None,
    b"/v1/%2e./x": None,
    b"/v1/models/..": None,
    b"/v1/models/.": None,
    b"/v1/./models": None,
    b"/v1/models/../": None,
    # encoded and other separators
    b"/v1/..%2f..%2fsecret": None,
    b"/v1/..%2F..%2Fsecret": None,
    b"/v1/%2e%2e%2f%2e%2e%2fsecret": None,
    b"/v1\\..\\..\\secret": None,
    b"/v1/..%5c..%5csecret": None,
    b"/v1/..;/..;/secret": None,
    b"/v1/..%3b/x": None,
    b"/v1/..%00/x": None,
    b"/%2e%2e%3f": None,  # `..?` once decoded: `..` to a server that then splits the query
    b"/v1/%2e%2e%3Fx=1": None,
    b"/%2e%2e%23": None,
    b"/v1/..%2523/x": None,
    # double, triple and quadruple encoding
    b"/v1/%252e%252e/x": None,
    b"/v1/%25252e%25252e/x": None,
    b"/v1/%2525252e/x": None,
    # dots as other characters, and trimmed spaces (Windows servers trim them)
    b"/v1/%ef%bc%8e%ef%bc%8e/x": None,  # fullwidth full stops
    b"/v1/%e2%80%a5/x": None,  # two dot leader
    b"/v1/%c0%ae%c0%ae/x": None,  # overlong UTF-8, not UTF-8 at all
    b"/v1/%20..%20/x": None,
    b"/v1/.../x": None,
    # not dot segments: sent as they came
    b"/v1/models": b"/v1/models",
    b"/v1/messages/count_tokens": b"/v1/messages/count_tokens",
    b"/v1/files/a..b/content": b"/v1/files/a..b/content",
    b"/v1/.well-known": b"/v1/.well-known",
    b"/v1/models?next=../../x&p=%2e%2e": b"/v1/models?next=../../x&p=..",
    b"/v1/a%2fb": b"/v1/a%2Fb",
    b"/v1/a..%3fb": b"/v1/a..%3Fb",
    b"/v1/a\\b": b"/v1/a%5Cb",
    b"/v1/%25": b"/v1/%25",
    b"//evil.test/v1/models": b"//evil.test/v1/models",
}


@pytest.mark.parametrize(("path", "expected"), VARIANTS.items())
def test_the_target_is_the_path_as_sent_or_refused(path: bytes, expected: bytes | None) -> None:
    query = b""
    if b"?" in path:
        path, _, query = path.partition(b"?")
    if expected is None:
        with pytest.raises(InvalidRequest, match="request path"):
            upstream_target(path, query)
    else:
        sent = path + (b"?" + query if query else b"")
        assert upstream_target(path, query) == sent.decode()


def test_a_target_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must be a path"):
        upstream_target(b"http://evil.test/x")


def test_encoding_past_the_limit_is_refused_and_up_to_it_decoded() -> None:
    escaped = b"%2e"
    for _ in range(MAX_DECODINGS - 1):
        escaped = escaped.replace(b"%", b"%25")
    with pytest.raises(InvalidRequest, match="dot segment"):
        upstream_target(b"/v1/" + escaped + b"/x")
    with pytest.raises(InvalidRequest, match=f"more than {MAX_DECODINGS} times"):
        upstream_target(b"/v1/" + escaped.replace(b"%", b"%25") + b"/x")


class RecordingUpstream(RawServer):
    """A raw-socket upstream: records each request line's target and x-api-key, answers
    200 `{}` and closes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes | None]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        headers = dict(f.split(b":", 1) for f in fields if b":" in f)
        key = headers.get(b"x-api-key", headers.get(b"X-Api-Key"))
        self.seen.append((line.split(b" ")[1], None if key is None else key.strip()))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: 2\r\nconnection: close\r\n\r\n{}"
        )
        await writer.drain()


async def raw_get(url: str, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """GET (or `method`) `target` on a raw socket, exactly as written; the status and body."""
    key = [(b"x-api-key", CLIENT_KEY.encode()), (b"connection", b"close")]
    async with Connection.to(url) as connection:
        await connection.send(head(target.decode(), method.decode(), key))
        reply = await connection.reply()
    return reply.status, reply.body


async def test_no_path_leaves_the_base_path_on_a_real_bridge(tmp_path: Path) -> None:
    """Each variant through a real process: refused with a 400 in the legacy envelope and
    nothing sent, or sent under the base path with the bridge's key."""
    upstream = RecordingUpstream()
    env = {
        "BRIDGE_UPSTREAM_KEY": "env:TEST_UPSTREAM_KEY",
        "BRIDGE_CLIENT_KEYS": "env:TEST_CLIENT_KEYS",
        "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
        "TEST_CLIENT_KEYS": CLIENT_KEY,
    }
    outcomes: dict[bytes, bytes | None] = {}
    async with (
        upstream,
        bridge_process(upstream.url + BASE, tmp_path / "bridge.log", env=env) as bridge,
    ):
        for path in VARIANTS:
            before = len(upstream.seen)
            status, body = await raw_get(bridge.url, path)
            if status == 400:
                error = json.loads(body)
                assert error["type"] == "error", body
                assert error["error"]["type"] == "invalid_request_error", body
                assert "request path" in error["error"]["message"], body
                assert len(upstream.seen) == before, path  # nothing was sent
                outcomes[path] = None
            else:
                assert status == 200, (path, status, body)
                [(target, key)] = upstream.seen[before:]
                assert key == UPSTREAM_KEY.encode()
                assert target.startswith(BASE.encode() + b"/"), target
                outcomes[path] = target.removeprefix(BASE.encode())
    assert outcomes == VARIANTS
    assert all(target.startswith(BASE.encode() + b"/") for target, _ in upstream.seen)


async def test_a_target_no_route_takes_is_refused_in_the_legacy_envelope(tmp_path: Path) -> None:
    """`OPTIONS *`, `GET *` and a path with a line break in it (the router's patterns
    stop at one) match no route: a 404 not_found_error in the legacy envelope, not the
    router's plain text, and nothing sent."""
    upstream = RecordingUpstream()
    async with (
        upstream,
        bridge_process(upstream.url + BASE, tmp_path / "bridge.log") as bridge,
    ):
        for method, target in [(b"OPTIONS", b"*"), (b"GET", b"*"), (b"GET", b"/v1/..%0a/x")]:
            status, body = await raw_get(bridge.url, target, method)
            assert status == 404, (method, target, body)
            assert json.loads(body) == {
                "type": "error",
                "error": {"type": "not_found_error", "message": "no such path"},
            }
    assert upstream.seen == []
