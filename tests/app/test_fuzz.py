"""Hostile input, fuzzed through the whole app: whatever a client sends (body, prompt,
headers) and whatever the upstream sends back, the bridge never answers with a 500, an
exception trace or a hang, and every refusal is a legacy-shaped 4xx.

The app runs in process behind httpx.ASGITransport, which re-raises anything the app
lets escape; the upstream is the strict fake Messages API (tests/fakes/upstream.py) or a
transport that answers with fuzzed bytes. Every call is bounded in time, and the log must
hold no error line (the bridge logs each exception it catches at that level). The pure
core has its own property tests (tests/unit/translate/test_properties.py); heads and bodies
over the size limits, on a real socket, are in tests/live/test_limits.py.

More examples for a longer hunt: `FUZZ_EXAMPLES=5000 pytest tests/app/test_fuzz.py`.
"""

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.errors import ERROR_TYPES
from proxy.translate.prompt import MUST_END, MUST_START
from tests.fakes.factories import legacy_body, message
from tests.fakes.loopback import loopback, running
from tests.fakes.sse import delta
from tests.fakes.sse import event as sse
from tests.fakes.upstream import FakeUpstream

KEY = "sk-ant-fuzz-0123456789"
BOUND = 5  # seconds any one call may take: a hang fails the example, not the suite
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V2 = {"anthropic-version": "2023-06-01", "x-api-key": KEY}


class Bridge:
    """The app in process in front of `upstream`; `call` runs one request to its end."""

    def __init__(self, runner: asyncio.Runner, upstream: AbstractAsyncContextManager[str]) -> None:
        self.runner = runner
        self._stack = AsyncExitStack()
        url = runner.run(self._stack.enter_async_context(upstream))
        app = create_app(Settings(upstream_url=url, max_body_bytes=1024 * 1024))
        runner.run(self._stack.enter_async_context(running(app)))
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bridge"
        )
        self._stack.push_async_callback(self.client.aclose)

    def close(self) -> None:
        self.runner.run(self._stack.aclose())

    def call(
        self, content: bytes, headers: Any = (), *, method: str = "POST", path: str = "/v1/complete"
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            async with asyncio.timeout(BOUND):
                return await self.client.request(method, path, content=content, headers=headers)

        with capture_logs() as logs:
            response = self.runner.run(send())
        errors = [e for e in logs if e["log_level"] in ("error", "critical") or "exc_info" in e]
        assert errors == [], f"the bridge caught an exception: {errors}"
        return response


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def fake(runner: asyncio.Runner) -> Iterator[Bridge]:
    """The bridge in front of the strict fake Messages API."""
    bridge = Bridge(runner, served(FakeUpstream()))
    yield bridge
    bridge.close()


@asynccontextmanager
async def served(upstream: FakeUpstream) -> AsyncIterator[str]:
    async with upstream:
        yield upstream.url


class Scripted:
    """An upstream that answers whatever `reply` says; each test sets it."""

    def __init__(self) -> None:
        self.reply: Callable[[httpx.Request], httpx.Response] = lambda _: httpx.Response(500)
        self.calls = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.calls += 1
        return self.reply(request)


@pytest.fixture(scope="module")
def scripted(runner: asyncio.Runner) -> Iterator[tuple[Bridge, Scripted]]:
    """The bridge in front of an upstream the test scripts."""
    upstream = Scripted()
    bridge = Bridge(runner, loopback(upstream))
    yield bridge, upstream
    bridge.close()


def legacy_error(response: httpx.Response, *, bridge_made: bool = True) -> dict[str, Any]:
    """The response is an error in the legacy envelope; its `error`. A bridge-made one
    has exactly the table's type and a message, and tells SDKs not to retry."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error" and isinstance(body["error"], dict), body
    if bridge_made:
        assert set(body) == {"type", "error"} and set(body["error"]) == {"type", "message"}
        assert body["error"]["type"] == ERROR_TYPES[response.status_code]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert response.headers["x-should-retry"] == "false"
    return body["error"]


# --- (a) request bodies -------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
FIELD_NAMES = ["model", "prompt", "max_tokens_to_sample", "stop_sequences", "temperature",
               "top_k", "top_p", "metadata", "stream", "tags", ""]  # fmt: skip
FIELDS = st.sampled_from(FIELD_NAMES)
BIG_NUMBERS = [b"1" * 30, b"-" + b"9" * 30, b"1e400", b"-1e400", b"1e-400", b"-0", b"1" * 5000]


@dataclass(frozen=True)
class Repeated:
    """`middle` between `head` and `tail`, each repeated `times`; built only when sent,
    so that a failing example prints short."""

    head: bytes
    times: int
    middle: bytes = b""
    tail: bytes = b""

    def __bytes__(self) -> bytes:
        return self.head * self.times + self.middle + self.tail * self.times


# Arrays or objects nested around orjson's depth limit of 1024, or far past it.
NESTED = st.builds(
    lambda depth, ends: Repeated(ends[0], depth, b"1", ends[1]),
    st.integers(1000, 1100) | st.just(100_000),
    st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]),
)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; without `ascii_only`, an unpaired surrogate stays raw (invalid UTF-8)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def with_raw_field(field: str, raw: bytes | Repeated) -> Repeated:
    """A valid body whose `field` holds the JSON text `raw`, as sent."""
    head = json.dumps(legacy_body())[:-1] + f', "{field}": '
    return Repeated(head.encode(), 1, bytes(raw), b"}")


BODIES = st.one_of(
    st.builds(encode, JSON, st.booleans()),  # any JSON at all, objects or not
    st.builds(encode, st.dictionaries(FIELDS, JSON, max_size=10), st.booleans()),
    st.builds(  # a valid body with one field replaced by anything
        lambda field, value, ascii_only: encode({**legacy_body(), field: value}, ascii_only),
        FIELDS,
        JSON,
        st.booleans(),
    ),
    st.builds(with_raw_field, FIELDS, st.sampled_from(BIG_NUMBERS) | NESTED),
    NESTED,
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda raw: json.dumps(legacy_body()).encode() + raw),
)


@FUZZ
@given(content=BODIES)
def test_any_body_is_answered_or_refused_with_a_legacy_4xx(
    scripted: tuple[Bridge, Scripted], content: bytes | Repeated
) -> None:
    """Any body at all, of any JSON shape or none, nested deep, with numbers past 64 bits
    or invalid UTF-8: the translated answer, or a bridge-made legacy 400 (413 past the
    size limit), never a 500."""
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(200, json=message())
    before = upstream.calls
    response = bridge.call(bytes(content), V2)
    event(f"status {response.status_code}")
    if upstream.calls == before:
        assert response.status_code in (400, 413), response.text
        legacy_error(response)
    else:
        assert response.status_code == 200, response.text


# --- (b) prompts and the other fields, against the strict fake ----------------------

FRAGMENTS = st.sampled_from(
    ["\n\nHuman:", "\n\nAssistant:", "\\n\\nHuman:", "\\n\\nAssistant:", "Human:",
     "Assistant:", "\n\nHuman: ", " ", "\n", "\n\n", "\t", "\r\n", "\u3000", "\u00a0",
     "\u2028", "x", "é", "日本", "😀", "\x00", "{"]
)  # fmt: skip
TEXTS = st.lists(FRAGMENTS | st.text(max_size=3), max_size=4).map("".join)
TURN_TEXTS = st.sampled_from([" Hello", " Why?\n", "\tsky", " 日本 😀", " {", "\u2028x"]) | TEXTS


@st.composite
def turns(draw: st.DrawFn) -> str:
    """A prompt shaped like turns (in either newline form), its text fuzzed."""
    newline = draw(st.sampled_from(["\n\n", "\\n\\n"]))
    roles = draw(st.lists(st.sampled_from(["Human", "Assistant"]), min_size=1, max_size=4))
    prompt = draw(st.sampled_from(["", "A system prompt."]) | TEXTS)
    for role in ["Human", *roles[1:], "Assistant"]:
        prompt += f"{newline}{role}:" + draw(TURN_TEXTS)
    return prompt


PROMPTS = st.one_of(
    st.lists(FRAGMENTS | st.text(max_size=3), max_size=14).map("".join),
    turns(),
    st.builds(  # half an emoji (sent escaped, as JSON allows), or a whole one in halves
        lambda prompt, at, half: prompt[:at] + half + prompt[at:],
        turns(),
        st.integers(0, 40),
        st.sampled_from(["\ud83d", "\ude00", "\ud83d\ude00"]),
    ),
)
STOP_TEXTS = ["\n", "\n\n", " ", "", "\t", "Human:", "x", "echo", "o", "😀", "\r\n", "\ud83d"]
OPTIONAL = {
    "stop_sequences": st.lists(st.sampled_from(STOP_TEXTS) | st.text(max_size=3), max_size=4),
    "temperature": st.sampled_from([0, 0.5, 1, 1.0, -1, 1.5]),
    "top_k": st.sampled_from([-1, 0, 5, 10**6, -2]),
    "top_p": st.sampled_from([-1, 0, 0.5, 0.99, 1, 2]),
    "metadata": st.sampled_from(
        [{}, {"user_id": None}, {"user_id": "u"}, {"user_id": "é"}, {"user_id": "\ud83d"}]
    ),
    "stream": st.booleans(),
    "tags": st.just({"a": "b"}),
}
MODELS = st.sampled_from(
    ["claude-2.1", "claude-2.0", "claude-instant-1.2", "claude-v1.3", "claude-1",
     "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-opus-4-7"]
)  # fmt: skip
# What the bridge refuses a legacy body for, each a 400 (SPEC 2, 5 and 6).
REFUSALS = re.compile(
    "|".join(
        re.escape(m)
        for m in (
            MUST_START,
            MUST_END,
            "prompt: Human turn ",
            "request body is not valid JSON: ",
            "max_tokens_to_sample: must be at least 1",
            "temperature: must be between 0 and 1",
            "top_k: must be at least 0 (or -1 for off)",
            "top_p: must be between 0 and 1 (or -1 for off)",
        )
    )
    + r"|(prompt|stop_sequences|metadata\.user_id): contains an unpaired surrogate"
    + r"|model '[^']+'( is served by '[^']+', which)? does not accept an assistant prefill"
)


@st.composite
def legacy_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = {
        "model": draw(MODELS),
        "prompt": draw(PROMPTS),
        "max_tokens_to_sample": draw(st.sampled_from([1, 300, 300, 300, 64_000, 10**9, 0])),
    }
    for name in draw(st.sets(st.sampled_from(sorted(OPTIONAL)))):
        body[name] = draw(OPTIONAL[name])
    return body


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(body=legacy_bodies(), version=st.sampled_from([None, "2023-01-01", "2023-06-01"]))
def test_any_prompt_is_refused_in_the_spec_wording_or_accepted_by_the_strict_fake(
    fake: Bridge, body: dict[str, Any], version: str | None
) -> None:
    """A prompt built from turn markers in both newline forms, whitespace, odd Unicode and
    unpaired surrogates (escaped in the JSON), with any mix of the other fields, for any
    model: a 400 in the SPEC's words, or a Messages request the strict fake accepts."""
    headers = {"x-api-key": KEY} | ({"anthropic-version": version} if version else {})
    response = fake.call(json.dumps(body).encode(), headers)
    if response.status_code != 200:
        error = legacy_error(response)  # the fake's own refusals fail this: no x-should-retry
        assert response.status_code == 400
        assert REFUSALS.match(error["message"]), error["message"]
        event("refused: " + error["message"][:24])
        return
    event("accepted")
    if body.get("stream"):
        assert_legacy_stream(response.text, v1=version != "2023-06-01", outcome="final")
    else:
        assert response.json()["type"] == "completion"


# --- (c) headers --------------------------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~", min_size=1, max_size=20)
FRAMING = ("content-length", "transfer-encoding")  # the server checks these: live/test_limits.py
NAMES = st.sampled_from(
    ["anthropic-version", "anthropic-beta", "x-api-key", "authorization", "content-type",
     "user-agent", "accept-encoding", "connection", "cookie", "x-forwarded-for", "host",
     "expect", "te", "upgrade"]
) | TOKEN.filter(lambda name: name not in FRAMING)  # fmt: skip
# What a server lets through in a header value: tab, visible ASCII, obs-text (latin-1).
VALUE_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
ODD_VALUES = [b"2023-06-01", b"2023-01-01", b"", b"2023-06-01, 2023-01-01", b"2024-99-99",
              b"Bearer ", b"Bearer \xff\xfe", b"keep-alive, x-api-key", b"gzip, br, zstd",
              b"100-continue", "文件".encode(), b"application/json; charset=latin-1"]  # fmt: skip
VALUES = st.one_of(
    st.binary(max_size=40).map(lambda raw: bytes(VALUE_BYTES[b % len(VALUE_BYTES)] for b in raw)),
    st.sampled_from(ODD_VALUES),
    st.integers(1, 100_000).map(lambda size: Repeated(b"a", size)),
)
HEADERS = st.lists(
    st.tuples(NAMES.map(str.encode), VALUES)
    | st.tuples(st.just(b"anthropic-version"), VALUES),  # duplicates, odd versions
    max_size=12,
)


def on_the_wire(headers: list[tuple[bytes, Any]]) -> list[tuple[bytes, bytes]]:
    """Values as a server hands them on: built, their ends stripped."""
    return [(name, bytes(value).strip(b" \t")) for name, value in headers]


@FUZZ
@given(headers=HEADERS, stream=st.booleans())
def test_any_headers_are_served_without_a_5xx(
    scripted: tuple[Bridge, Scripted], headers: list[tuple[bytes, Any]], stream: bool
) -> None:
    """Headers of any name, latin-1 values, huge ones, duplicate or odd anthropic-version:
    the legacy call is answered (the first anthropic-version picks the format) and so is
    a pass-through call."""
    bridge, upstream = scripted
    headers = on_the_wire(headers)
    upstream.reply = lambda request: (
        httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
        if request.url.path == "/v1/messages" and stream
        else httpx.Response(200, json=message())
    )
    response = bridge.call(json.dumps(legacy_body(stream=stream)).encode(), headers)
    assert response.status_code == 200, response.text
    first = dict(reversed(headers)).get(b"anthropic-version")
    v1 = first in (None, b"2023-01-01")
    if stream:
        assert_legacy_stream(response.text, v1=v1, outcome="final")
    else:
        assert ("truncated" in response.json()) is v1
    response = bridge.call(b"", headers, method="GET", path="/v1/models")
    assert response.status_code == 200, response.text


# --- (d) what the upstream sends back -----------------------------------------------


START = sse("message_start", message={"id": "msg_f", "usage": {"input_tokens": 1}})
BLOCK = sse("content_block_start", index=0, content_block={"type": "text", "text": ""})
END = sse("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
STOP = sse("message_stop")
STREAM = START + BLOCK + delta("Hi") + delta(" there") + END + STOP
OVERLOADED = sse("error", error={"type": "overloaded_error", "message": "Overloaded"})
STOP_DELTA = sse("message_delta", delta={"stop_reason": "stop_sequence", "stop_sequence": "\n"})
TOOL_BLOCK = sse("content_block_start", index=1, content_block={"type": "tool_use"})
KNOWN_PIECES = [START, BLOCK, END, STOP, sse("ping"), sse("content_block_stop", index=0),
                OVERLOADED, STOP_DELTA, TOOL_BLOCK, sse("some_future_event", x=1),
                b"event: error\n", b"data: ", b"data: {}\n", b"\n", b"\r", b"\r\n", b"\n\n",
                b": keep-alive\n\n", b"\xff\xfe", "文".encode()[:2]]  # fmt: skip
PIECES = st.one_of(
    st.sampled_from(KNOWN_PIECES),
    st.text(max_size=12).map(delta),
    st.builds(
        lambda kind, data: sse(kind, **data),
        st.text(max_size=20),
        st.dictionaries(st.text(max_size=6), JSON, max_size=3),
    ),
    st.binary(max_size=30),
)


MAX_TOKENS = sse("message_delta", delta={"stop_reason": "max_tokens"})


@st.composite
def upstream_streams(draw: st.DrawFn) -> list[bytes]:
    """Upstream bytes, cut into chunks anywhere: a well-formed stream with fuzzed text,
    perhaps with a piece of garbage in it or cut short; or garbage after a good start."""
    if draw(st.booleans()):
        deltas = [delta(text) for text in draw(st.lists(st.text(max_size=8), max_size=5))]
        script = [START, BLOCK, *deltas, draw(st.sampled_from([END, STOP_DELTA, MAX_TOKENS])), STOP]
        if draw(st.booleans()):
            script.insert(draw(st.integers(0, len(script))), draw(PIECES))
        data = b"".join(script)
        data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    else:
        head = draw(st.sampled_from([b"", START, START + BLOCK]))
        data = head + b"".join(draw(st.lists(PIECES, max_size=12)))
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=8)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


class Chunks(httpx.AsyncByteStream):
    """An upstream body that arrives in these chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def assert_legacy_stream(text: str, *, v1: bool, outcome: str | None = None) -> str:
    """`text` is a well-formed legacy stream (SPEC 4 and 6): completion events with null
    stop fields (v2 pings anywhere), then one final completion or one error, and nothing
    after it but v1's `[DONE]`. Returns "final" or "error"."""
    assert text.endswith("\n\n"), text[-200:]
    blocks = text[:-2].split("\n\n")
    events = []
    if v1:
        assert blocks.pop() == "data: [DONE]", text[-200:]
        for block in blocks:
            assert block.startswith("data: ") and "\n" not in block, block
            events.append(json.loads(block[6:]))
    else:
        for block in blocks:
            kind, _, data = block.partition("\n")
            assert kind in ("event: completion", "event: ping", "event: error"), block
            assert data.startswith("data: ") and "\n" not in data, block
            events.append(json.loads(data[6:]))
            assert events[-1]["type"] == kind[7:], block
        events = [e for e in events if e["type"] != "ping"]
    assert events, text
    *middle, last = events
    so_far = ""
    for completion in middle:
        assert completion["type"] == "completion", completion
        assert completion["stop_reason"] is None and completion["stop"] is None
        assert ("truncated" in completion) is v1 and ("exception" in completion) is v1
        if v1:  # each carries the whole completion so far
            assert completion["completion"].startswith(so_far)
            so_far = completion["completion"]
    if last["type"] == "error":
        assert set(last) == ({"type", "error", "exception"} if v1 else {"type", "error"})
        assert set(last["error"]) == {"type", "message"}
        result = "error"
    else:
        assert last["type"] == "completion", last
        assert last["stop_reason"] in ("stop_sequence", "max_tokens"), last
        assert last["completion"].startswith(so_far) if v1 else last["completion"] == ""
        result = "final"
    assert outcome in (None, result), text
    return result


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(
    chunks=upstream_streams(),
    v1=st.booleans(),
    stops=st.sampled_from([[], ["\n"], ["\n\n", " "], ["x"]]),
    prompt=st.sampled_from(["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: hi\n\nAssistant: {"]),
)
def test_any_upstream_stream_becomes_a_well_formed_legacy_stream(
    scripted: tuple[Bridge, Scripted], chunks: list[bytes], v1: bool, stops: list[str], prompt: str
) -> None:
    """Whatever bytes a 200 event stream carries, cut into whatever chunks, with local
    stop sequences or a prefill: the client gets a well-formed v1 or v2 stream that ends
    in a final completion or an error event."""
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(200, stream=Chunks(chunks))
    headers = {} if v1 else {"anthropic-version": "2023-06-01"}
    body = legacy_body(stream=True, stop_sequences=stops, prompt=prompt)
    response = bridge.call(json.dumps(body).encode(), headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    event(assert_legacy_stream(response.text, v1=v1))


MESSAGE_FIELDS = ["id", "content", "stop_reason", "stop_sequence", "usage", "model", "type"]
BLOCKS = st.lists(st.dictionaries(st.sampled_from(["type", "text"]), JSON | st.just("text")))
UPSTREAM_BODIES = st.one_of(
    st.builds(lambda value: json.dumps(value).encode(), JSON),
    st.builds(  # a message with some fields replaced by anything
        lambda fields: json.dumps({**message(), **fields}).encode(),
        st.dictionaries(st.sampled_from(MESSAGE_FIELDS), JSON | BLOCKS),
    ),
    st.binary(max_size=100),
)


def usage_not_an_object(body: bytes) -> bool:
    """The known bug test_upstream_usage_not_an_object_is_a_502_not_a_500 pins."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and not isinstance(answer.get("usage") or {}, dict)


@FUZZ
@given(body=UPSTREAM_BODIES, v1=st.booleans())
def test_any_upstream_answer_becomes_a_completion_or_a_502(
    scripted: tuple[Bridge, Scripted], body: bytes, v1: bool
) -> None:
    """Whatever a 200 JSON answer holds: a legacy completion, or the bridge's 502
    `api_error` for an answer it cannot read; never a 500."""
    assume(not usage_not_an_object(body))
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(200, content=body)
    headers = {} if v1 else {"anthropic-version": "2023-06-01"}
    response = bridge.call(json.dumps(legacy_body()).encode(), headers)
    event(f"status {response.status_code}")
    if response.status_code == 200:
        completion = response.json()
        assert completion["type"] == "completion" and isinstance(completion["completion"], str)
    else:
        assert response.status_code == 502
        assert response.json()["error"] == {
            "type": "api_error",
            "message": "upstream sent a response the bridge cannot read",
        }


def test_upstream_usage_not_an_object_is_a_502_not_a_500(scripted: tuple[Bridge, Scripted]) -> None:
    """Regression, found by the fuzzer: a 200 answer whose `usage` is not an object (here
    "0") made a 500 and an exception trace; it is an answer the bridge cannot read, a 502."""
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(200, json=message(usage="0"))
    response = bridge.call(json.dumps(legacy_body()).encode(), V2)
    assert response.status_code == 502


@FUZZ
@given(
    status=st.sampled_from([400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529]),
    body=UPSTREAM_BODIES,
    stream=st.booleans(),
)
def test_any_upstream_error_keeps_its_status_in_a_legacy_envelope(
    scripted: tuple[Bridge, Scripted], status: int, body: bytes, stream: bool
) -> None:
    """An upstream error with any body reaches the client with its status, in a legacy
    error envelope (the upstream's own when it sent one)."""
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(status, content=body)
    response = bridge.call(json.dumps(legacy_body(stream=stream)).encode(), V2)
    assert response.status_code == status
    legacy_error(response, bridge_made=False)


@pytest.mark.parametrize(("declared", "status"), [("\u00b2", 200), ("9" * 5000, 413)])
def test_odd_content_length_is_not_a_500(
    scripted: tuple[Bridge, Scripted], declared: str, status: int
) -> None:
    """Regression, found by the fuzzer: a content-length that str.isdigit() accepts but
    int() does not (a superscript two, or past 4300 digits) made a 500 and a trace. Now
    the first is not a length (the body that comes is read), the second is over any
    limit. uvicorn's parser refuses both before the app; another ASGI server may not."""
    bridge, upstream = scripted
    upstream.reply = lambda request: httpx.Response(200, json=message())
    headers = [(b"content-length", declared.encode("latin-1")), (b"x-api-key", KEY.encode())]
    response = bridge.call(json.dumps(legacy_body()).encode(), headers)
    assert response.status_code == status
