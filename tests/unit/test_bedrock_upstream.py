"""The Bedrock layers of the upstream client, over the in-memory transport: the Messages
call made in Bedrock's form, and Bedrock's answers (its event stream at every split,
its errors) made the Messages API's; the SigV4 layer's signature."""

import base64
import json
from collections.abc import AsyncIterator

import pytest
from botocore.credentials import Credentials

from proxy.errors import BadUpstreamResponse, NotFound
from proxy.translate import eventstream
from proxy.upstream.answer import Answer, answer
from proxy.upstream.bedrock import BedrockMessages, bedrock_error
from proxy.upstream.memory import MemoryTransport
from proxy.upstream.sigv4 import Signing
from proxy.upstream.transport import Request

BASE = "http://bedrock.test"
EVENTS: list[dict[str, object]] = [
    {"type": "message_start", "message": {"id": "msg_1"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hé"}},
    {"type": "message_stop"},
]


def messages_call(**body: object) -> Request:
    content = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, **body}).encode()
    headers = [(b"x-api-key", b"sk-secret"), (b"anthropic-version", b"2023-06-01")]
    return Request("POST", BASE + "/v1/messages", headers, content)


def chunk(event: dict[str, object]) -> bytes:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    return eventstream.event("chunk", json.dumps({"bytes": data}).encode())


async def body_of(got: Answer) -> bytes:
    return b"".join([part async for part in got.body])


async def test_the_call_takes_bedrocks_form() -> None:
    seen: list[Request] = []

    async def bedrock(request: Request) -> Answer:
        seen.append(request)
        return answer(200, [(b"x-amzn-requestid", b"r-1")], b'{"id": "msg_1"}')

    layer = BedrockMessages(MemoryTransport(bedrock))
    got = await layer.send(messages_call(stream=False, metadata={"user_id": "u"}))
    assert (got.status_code, got.headers["request-id"]) == (200, "r-1")
    assert await body_of(got) == b'{"id": "msg_1"}'
    [request] = seen
    assert request.url == BASE + "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    assert dict(request.headers) == {
        b"content-type": b"application/json",
        b"accept": b"application/json",
    }
    assert isinstance(request.content, bytes)
    assert json.loads(request.content) == {
        "max_tokens": 5,
        "anthropic_version": "bedrock-2023-05-31",
    }
    with pytest.raises(NotFound):
        await layer.send(Request("GET", BASE + "/v1/models", [], b""))


async def test_event_stream_becomes_server_sent_events_at_every_split() -> None:
    data = b"".join(chunk(event) for event in EVENTS)
    data += eventstream.exception("throttlingException", b'{"message":"slow"}')
    expected = b"".join(
        f"event: {event['type']}\ndata: ".encode() + json.dumps(event).encode() + b"\n\n"
        for event in EVENTS
    )
    for split in range(len(data) + 1):

        async def bedrock(request: Request, split: int = split) -> Answer:
            async def parts() -> AsyncIterator[bytes]:
                yield data[:split]
                yield data[split:]

            return answer(200, [], parts())

        got = await BedrockMessages(MemoryTransport(bedrock)).send(messages_call(stream=True))
        out = await body_of(got)
        await got.close()
        events, _, error = out.rpartition(b"event: error\n")
        assert events == expected
        assert json.loads(error.removeprefix(b"data: ")) == {
            "type": "error", "error": {"type": "rate_limit_error", "message": "Bedrock: slow"},
        }  # fmt: skip


async def test_a_corrupt_event_stream_is_a_bad_upstream_response() -> None:
    data = bytearray(chunk(EVENTS[0]))
    data[-1] ^= 1

    async def bedrock(request: Request) -> Answer:
        return answer(200, [], bytes(data))

    got = await BedrockMessages(MemoryTransport(bedrock)).send(messages_call(stream=True))
    with pytest.raises(BadUpstreamResponse, match="event stream"):
        await body_of(got)


@pytest.mark.parametrize(
    ("status", "name", "body", "expected"),
    [
        (
            400,
            "ValidationException:http://x/",
            b'{"message":"bad"}',
            (400, "invalid_request_error", "bad"),
        ),
        (429, "ThrottlingException", b'{"Message":"slow"}', (429, "rate_limit_error", "slow")),
        (503, "ServiceUnavailableException", b"down", (529, "overloaded_error", "down")),
        (403, "UnrecognizedClientException", b"{}", (401, "authentication_error", "None")),
        (500, "", b"", (500, "api_error", "no body")),
    ],
)
async def test_errors_become_the_messages_apis(
    status: int, name: str, body: bytes, expected: tuple[int, str, str]
) -> None:
    async def bedrock(request: Request) -> Answer:
        return answer(status, [(b"x-amzn-errortype", name.encode())], body)

    got = await BedrockMessages(MemoryTransport(bedrock)).send(messages_call())
    error = json.loads(await body_of(got))["error"]
    assert (got.status_code, error["type"], error["message"]) == (
        expected[0], expected[1], f"Bedrock: {expected[2]}",
    )  # fmt: skip
    assert bedrock_error("modelTimeoutException") == (504, "timeout_error")


async def test_signing_layer_signs_with_the_credentials() -> None:
    seen: list[Request] = []

    async def bedrock(request: Request) -> Answer:
        seen.append(request)
        return answer(200, [], b"{}")

    credentials = Credentials("AKIDTEST", "secret", "token")
    layer = Signing(MemoryTransport(bedrock), "eu-west-3", credentials=credentials)
    signed = [(b"authorization", b"AWS4-HMAC-SHA256 old"), (b"content-type", b"application/json")]
    await layer.send(Request("POST", BASE + "/model/m/invoke", signed, b"{}"))
    headers = dict(seen[0].headers)
    assert headers[b"authorization"].startswith(b"AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert b"/eu-west-3/bedrock/aws4_request" in headers[b"authorization"]
    assert headers[b"x-amz-security-token"] == b"token"
    assert len([n for n, _ in seen[0].headers if n == b"authorization"]) == 1
