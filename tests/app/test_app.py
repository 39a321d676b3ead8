"""The app in-process: ASGI in front, a scripted upstream on a loopback socket behind."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from tests.fakes.factories import legacy_body, message
from tests.fakes.loopback import loopback, running, unaccepting
from tests.fakes.servers import free_port
from tests.fakes.sse import event as sse_event

KEY = "sk-ant-test-CANARY-0123456789"
V2 = {"anthropic-version": "2023-06-01", "x-api-key": KEY}


Reply = Callable[[httpx.Request], httpx.Response]


class Upstream:
    """A scripted Messages API: answers with `reply(request)`, remembers what it got."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return self.reply(request)

    @property
    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


def ok(text: str = "Light scatters blue.", **overrides: Any) -> Reply:
    headers = {"request-id": "req_1", "anthropic-ratelimit-requests-remaining": "99"}
    return lambda request: httpx.Response(200, json=message(text, **overrides), headers=headers)


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(sse_event(kind, **data) for kind, data in events)


STREAM = sse(
    ("message_start", {"message": {"id": "msg_9", "usage": {"input_tokens": 3}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": " there"}}),
    ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
    ("message_stop", {}),
)


def streaming(body: bytes = STREAM) -> Reply:
    """A stream answer that arrives an event at a time, as from a live upstream."""

    async def events() -> AsyncIterator[bytes]:
        for event in body.split(b"\n\n"):
            yield event + b"\n\n"

    return lambda request: httpx.Response(
        200, content=events(), headers={"content-type": "text/event-stream", "request-id": "req_s"}
    )


# The `make_client` fixture: make(reply, **settings) starts the app in front of an
# Upstream answering with `reply`; a client of the app, and that Upstream.
MakeClient = Callable[..., Awaitable[tuple[httpx.AsyncClient, Upstream]]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    async with AsyncExitStack() as stack:

        async def make(reply: Reply, **settings: Any) -> tuple[httpx.AsyncClient, Upstream]:
            upstream = Upstream(reply)
            url = await stack.enter_async_context(loopback(upstream))
            app = create_app(Settings(**{"upstream_url": url, **settings}))
            await stack.enter_async_context(running(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://bridge")
            await stack.enter_async_context(client)
            return client, upstream

        yield make


async def test_non_stream_round_trip(make_client: MakeClient) -> None:
    """A legacy call becomes a Messages call and the answer a legacy completion."""
    client, upstream = await make_client(ok())
    response = await client.post(
        "/v1/complete", json=legacy_body(), headers={**V2, "anthropic-beta": "b1", "cookie": "c"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "type": "completion",
        "id": "compl_01XYZ",
        "completion": " Light scatters blue.",
        "stop_reason": "stop_sequence",
        "model": "claude-2.1",
        "stop": "\n\nHuman:",
        "log_id": "compl_01XYZ",
    }
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"] == "req_1"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "99"
    assert response.headers["x-bridge-input-tokens"] == "12"
    assert response.headers["x-bridge-output-tokens"] == "5"
    sent = upstream.requests[-1]
    assert sent.method == "POST" and sent.url.path == "/v1/messages"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-beta"] == "b1"
    assert "cookie" not in sent.headers
    assert upstream.body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 300,
    }


async def test_bearer_token_forwarded(make_client: MakeClient) -> None:
    """`authorization: Bearer` reaches the upstream as it came."""
    client, upstream = await make_client(ok())
    await client.post("/v1/complete", json=legacy_body(), headers={"authorization": "Bearer t"})
    assert upstream.requests[-1].headers["authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("version", "v1"), [(None, True), ("2023-01-01", True), ("2023-06-01", False)]
)
async def test_version_header_chooses_the_body_extras(
    make_client: MakeClient, version: str | None, v1: bool
) -> None:
    """2023-01-01 or no version: truncated/exception in the body; 2023-06-01: not."""
    client, _ = await make_client(ok())
    headers = {"anthropic-version": version} if version else {}
    body = (await client.post("/v1/complete", json=legacy_body(), headers=headers)).json()
    assert ("truncated" in body) is v1
    assert ("exception" in body) is v1


async def test_echo_model_off_names_the_upstream_model(make_client: MakeClient) -> None:
    """With echo_model off, responses name the model that answered."""
    client, _ = await make_client(ok(), echo_model=False)
    body = (await client.post("/v1/complete", json=legacy_body(), headers=V2)).json()
    assert body["model"] == "claude-sonnet-4-5"


async def test_local_stop_non_stream(make_client: MakeClient) -> None:
    """A whitespace stop the upstream cannot take is enforced on the whole answer."""
    client, upstream = await make_client(ok("one\ntwo"))
    body = (
        await client.post("/v1/complete", json=legacy_body(stop_sequences=["\n"]), headers=V2)
    ).json()
    assert "stop_sequences" not in upstream.body
    assert (body["completion"], body["stop_reason"], body["stop"]) == (
        " one",
        "stop_sequence",
        "\n",
    )


async def test_stream_v2(make_client: MakeClient) -> None:
    """stream: true with 2023-06-01 gives the v2 event stream."""
    client, upstream = await make_client(streaming())
    response = await client.post("/v1/complete", json=legacy_body(stream=True), headers=V2)
    assert upstream.body["stream"] is True
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["request-id"] == "req_s"
    events = [
        json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data:")
    ]
    assert [e["completion"] for e in events] == [" Hi", " there", ""]
    assert events[-1]["stop"] == "\n\nHuman:"
    assert response.text.count("event: completion") == 3


async def test_stream_v1(make_client: MakeClient) -> None:
    """stream: true with no version gives v1: cumulative text, then [DONE]. The newest
    text is held back for the last line, which always brings new text (SPEC §4)."""
    client, _ = await make_client(streaming())
    response = await client.post("/v1/complete", json=legacy_body(stream=True))
    lines = [line for line in response.text.split("\n") if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert [(e["completion"], e["stop_reason"]) for e in events] == [
        (" Hi", None),
        (" Hi there", "stop_sequence"),
    ]


async def test_upstream_error_before_first_byte_keeps_status_envelope_and_retry_headers(
    make_client: MakeClient,
) -> None:
    """A 529 reaches the SDK as the same 529, body and retry headers: it retries as before."""
    envelope = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    headers = {
        "retry-after": "3",
        "retry-after-ms": "3000",
        "x-should-retry": "true",
        "request-id": "r",
    }
    client, _ = await make_client(lambda r: httpx.Response(529, json=envelope, headers=headers))
    for stream in (False, True):
        response = await client.post("/v1/complete", json=legacy_body(stream=stream), headers=V2)
        assert response.status_code == 529
        assert response.json() == envelope
        assert response.headers["content-type"] == "application/json"
        for name, value in headers.items():
            assert response.headers[name] == value


@pytest.mark.parametrize(
    ("status", "error_type"), [(402, "billing_error"), (409, "conflict_error"), (503, "whatever")]
)
async def test_unlisted_statuses_pass_through_with_their_envelope(
    make_client: MakeClient, status: int, error_type: str
) -> None:
    """402, 409, 503 and the like keep the upstream's own envelope."""
    envelope = {"type": "error", "error": {"type": error_type, "message": "m"}}
    client, _ = await make_client(lambda r: httpx.Response(status, json=envelope))
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert (response.status_code, response.json()) == (status, envelope)


async def test_non_json_upstream_error_is_wrapped(make_client: MakeClient) -> None:
    """An HTML 502 from a load balancer still reaches the client in the error envelope."""
    client, _ = await make_client(lambda r: httpx.Response(502, text="<html>Bad gateway</html>"))
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == 502
    assert response.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream said: <html>Bad gateway</html>"},
    }


async def test_unreadable_upstream_200_is_a_502(make_client: MakeClient) -> None:
    """A 200 that is not a Messages body is the upstream's fault: 502 api_error."""
    client, _ = await make_client(lambda r: httpx.Response(200, json=[1, 2]))
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    assert "x-should-retry" not in response.headers


def raises(exc: Exception) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        raise exc

    return reply


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [
        ("refused", 502, "api_error"),  # nothing listens on the port
        ("connect_timeout", 502, "api_error"),  # the port never accepts
        ("silent", 504, "timeout_error"),  # connected, but no answer
        ("reset", 502, "api_error"),  # the connection drops before the answer
    ],
)
async def test_upstream_transport_failures(
    make_client: MakeClient, fault: str, status: int, error_type: str
) -> None:
    """Unreachable: 502 api_error; too slow: 504 timeout_error; neither says don't retry.
    Each fault is made on the wire."""
    with unaccepting() as unaccepting_url:
        by_fault: dict[str, dict[str, Any]] = {
            "refused": {"upstream_url": f"http://127.0.0.1:{free_port()}"},
            "connect_timeout": {"upstream_url": unaccepting_url, "connect_timeout": 0.2},
            "silent": {"first_byte_timeout": 0.2},
            "reset": {},
        }
        settings = by_fault[fault]
        reply = raises(httpx.ReadTimeout("slow") if fault == "silent" else httpx.ReadError("reset"))
        client, _ = await make_client(reply, **settings)
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert "x-should-retry" not in response.headers


class BrokenStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield STREAM[:200]
        raise httpx.ReadError("connection reset")


@pytest.mark.parametrize("version", ["2023-06-01", None])
async def test_stream_cut_by_the_network_ends_with_an_error(
    make_client: MakeClient, version: str | None
) -> None:
    """A stream cut after the 200 never ends cleanly: the last event is an error."""
    client, _ = await make_client(lambda r: httpx.Response(200, stream=BrokenStream()))
    headers = {"anthropic-version": version} if version else {}
    response = await client.post("/v1/complete", json=legacy_body(stream=True), headers=headers)
    assert response.status_code == 200
    assert '"message":"upstream connection lost"' in response.text
    assert '"stop_reason":"stop_sequence"' not in response.text
    assert response.text.endswith("data: [DONE]\n\n") is (version is None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{nope", "request body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "request body has more than 10000 JSON values"),
        (b"[" * 2_000 + b"]" * 2_000, "request body is not valid JSON: depth limit exceeded"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (json.dumps(legacy_body(prompt="hi")).encode(), "prompt must start with"),
        (json.dumps(legacy_body(temperature=7)).encode(), "temperature: must be between 0 and 1"),
    ],
)
async def test_bad_input_is_a_legacy_400(
    make_client: MakeClient, content: bytes, message: str
) -> None:
    """Bad input: a 400 envelope that says what to fix, x-should-retry false, no upstream call."""
    client, upstream = await make_client(ok())
    response = await client.post("/v1/complete", content=content, headers=V2)
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(message)
    assert upstream.requests == []


async def test_oversized_body_is_a_413(make_client: MakeClient) -> None:
    """Over the configured limit: 413 request_too_large, with or without content-length."""
    client, upstream = await make_client(ok(), max_body_bytes=2048)
    big = json.dumps(legacy_body(prompt="\n\nHuman: " + "x" * 5000 + "\n\nAssistant:")).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield big[:1000]
        yield big[1000:]

    for content in (big, chunks()):
        response = await client.post("/v1/complete", content=content, headers=V2)
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"
    assert upstream.requests == []


async def test_healthz_never_calls_upstream(make_client: MakeClient) -> None:
    """/healthz answers alone."""
    client, upstream = await make_client(raises(AssertionError("no upstream call")))
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert upstream.requests == []


async def test_other_paths_pass_through_unchanged(make_client: MakeClient) -> None:
    """Anything but POST /v1/complete goes to the upstream as it is: method, path, query,
    headers, body; and comes back as it is."""

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            201, content=b'{"raw": true}', headers={"x-upstream": "1", "content-type": "x/y"}
        )

    client, upstream = await make_client(reply)
    response = await client.post(
        "/v1/messages?beta=true",
        content=b'{"any": "thing"}',
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01", "x-custom": "c"},
    )
    assert response.status_code == 201
    assert response.content == b'{"raw": true}'
    assert response.headers["x-upstream"] == "1"
    sent = upstream.requests[-1]
    assert (sent.method, sent.url.path, sent.url.query) == ("POST", "/v1/messages", b"beta=true")
    assert sent.content == b'{"any": "thing"}'
    assert sent.headers["x-custom"] == "c"
    assert sent.headers["accept-encoding"] == "gzip, deflate"  # the client's own
    assert sent.headers["host"] == sent.url.netloc.decode()  # the upstream's, not `bridge`

    del client.headers["accept-encoding"]
    await client.get("/v1/models")
    assert "accept-encoding" not in upstream.requests[-1].headers  # none the client did not ask
    assert upstream.requests[-1].method == "GET"
    assert upstream.requests[-1].content == b""
    assert "transfer-encoding" not in upstream.requests[-1].headers


async def test_get_on_complete_passes_through(make_client: MakeClient) -> None:
    """Only POST /v1/complete is translated."""
    client, upstream = await make_client(lambda r: httpx.Response(405))
    assert (await client.get("/v1/complete")).status_code == 405
    assert upstream.requests[-1].url.path == "/v1/complete"


async def test_passthrough_upstream_unreachable(make_client: MakeClient) -> None:
    """A pass-through whose upstream is down gets the same 502 envelope."""
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client, _ = await make_client(raises(httpx.ConnectError("refused")), upstream_url=down)
    response = await client.get("/v1/models")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"


async def test_canonical_log_line(make_client: MakeClient) -> None:
    """One line per request with the facts an operator greps for, and never the key."""
    client, _ = await make_client(ok())
    with capture_logs() as logs:
        await client.post(
            "/v1/complete",
            json=legacy_body(
                prompt="Sys\n\nHuman: hi\n\nAssistant: {",
                max_tokens_to_sample=10**6,
                stop_sequences=["\n"],
            ),
            headers=V2,
        )
    (line,) = [entry for entry in logs if entry["event"] == "complete"]
    assert line["legacy_model"] == "claude-2.1"
    assert line["upstream_model"] == "claude-sonnet-4-5"
    assert line["format"] == "v2"
    assert (line["turns"], line["system"], line["prefill"]) == (2, True, True)
    assert line["adaptations"] == ["capped_max_tokens:1000000->64000", "local_stop"]
    assert (line["upstream_status"], line["status"]) == (200, 200)
    assert (line["upstream_stop_reason"], line["stop_reason"]) == ("end_turn", "stop_sequence")
    assert (line["input_tokens"], line["output_tokens"]) == (12, 5)
    assert line["request_id"] == "req_1"
    assert line["ttfb_ms"] >= 0 and line["duration_ms"] >= line["ttfb_ms"]
    assert "prompt" not in line and "completion" not in line
    assert KEY not in repr(logs)


async def test_log_text_switch(make_client: MakeClient) -> None:
    """Prompt and completion text are logged only when switched on."""
    client, _ = await make_client(streaming(), log_text=True)
    with capture_logs() as logs:
        await client.post("/v1/complete", json=legacy_body(stream=True), headers=V2)
    (line,) = [entry for entry in logs if entry["event"] == "complete"]
    assert line["prompt"] == legacy_body()["prompt"]
    assert line["completion"] == " Hi there"
    assert (line["input_tokens"], line["output_tokens"]) == (3, 2)


async def test_demo_upstream(make_client: MakeClient) -> None:
    """`demo:` answers deterministically with no network, streaming or not."""
    app = create_app(Settings(upstream_url="demo:"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        body = (await c.post("/v1/complete", json=legacy_body(), headers=V2)).json()
        assert body["completion"] == (
            " Hello from the complete-bridge demo upstream. You said: Why is the sky blue?"
        )
        stream = await c.post("/v1/complete", json=legacy_body(stream=True, max_tokens_to_sample=3))
        assert '"completion":" Hello from the","stop_reason":"max_tokens"' in stream.text
        stopped = await c.post(
            "/v1/complete", json=legacy_body(stop_sequences=["demo"]), headers=V2
        )
        assert stopped.json()["stop"] == "demo"
        assert (await c.get("/v1/models")).status_code == 404


class StallingBody(httpx.AsyncByteStream):
    def __init__(self, first: bytes, exc: Exception) -> None:
        self.first, self.exc = first, exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise self.exc


@pytest.mark.parametrize(
    ("status", "exc", "expected", "error_type"),
    [
        (200, httpx.ReadTimeout("slow"), 504, "timeout_error"),
        (200, httpx.RemoteProtocolError("reset"), 502, "api_error"),
        (529, httpx.ReadTimeout("slow"), 504, "timeout_error"),
    ],
)
async def test_upstream_failing_while_sending_its_body(
    make_client: MakeClient, status: int, exc: Exception, expected: int, error_type: str
) -> None:
    """Regression: a body read that failed became a 500; it is the upstream's 502/504."""
    client, _ = await make_client(
        lambda r: httpx.Response(status, stream=StallingBody(b'{"id":', exc)), idle_timeout=0.2
    )
    response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
    assert response.status_code == expected
    assert response.json()["error"]["type"] == error_type


async def test_unpaired_surrogate_is_a_400_not_a_500(make_client: MakeClient) -> None:
    """Regression: half an emoji in the prompt crashed the upstream call's encoding."""
    client, upstream = await make_client(ok())
    content = json.dumps(legacy_body(prompt="\n\nHuman: hi \ud83d\n\nAssistant:"))
    response = await client.post("/v1/complete", content=content, headers=V2)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "request body is not valid JSON: no low surrogate in string"
    )
    assert upstream.requests == []


async def test_passthrough_relays_non_ascii_headers_as_bytes(make_client: MakeClient) -> None:
    """Regression: a UTF-8 filename header from the upstream crashed the pass-through."""
    disposition = 'attachment; filename="文件.pdf"'.encode()

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[(b"content-disposition", disposition)], content=b"x")

    client, upstream = await make_client(reply)
    sent = [(b"x-note", "café".encode()), (b"x-latin", b"caf\xe9")]
    response = await client.get("/v1/files/f/content", headers=sent)
    assert response.status_code == 200
    assert (b"content-disposition", disposition) in response.headers.raw
    received = upstream.requests[-1].headers.raw
    assert (b"x-note", "café".encode()) in received  # UTF-8 goes as it came
    # aiohttp writes header values as UTF-8: other bytes go as their Latin-1 reading.
    assert (b"x-latin", "café".encode()) in received


async def test_stream_with_malformed_usage_ends_with_an_error_event(
    make_client: MakeClient,
) -> None:
    """Regression: `usage: null` in message_delta left the stream unterminated."""
    body = STREAM.replace(b'"usage": {"output_tokens": 2}', b'"usage": null')
    client, _ = await make_client(streaming(body))
    response = await client.post("/v1/complete", json=legacy_body(stream=True), headers=V2)
    assert response.text.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"api_error",'
        '"message":"bad upstream stream: malformed message_delta event"}}\n\n'
    )


async def test_no_cookie_jar_between_callers(make_client: MakeClient) -> None:
    """Regression: httpx's client kept a cookie jar, so a cookie one upstream answer set
    went out on the next caller's request. There is no jar now."""

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=message(), headers={"set-cookie": "session=abc; Path=/"})

    client, upstream = await make_client(reply)
    for _ in range(2):
        client.cookies.clear()  # the test client's own jar is not the bridge's
        await client.post("/v1/complete", json=legacy_body(), headers=V2)
        client.cookies.clear()
        await client.get("/v1/models")
    assert all("cookie" not in request.headers for request in upstream.requests)
