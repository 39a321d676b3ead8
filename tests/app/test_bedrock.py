"""Bedrock's legacy Claude calls, made by boto3 itself (`invoke_model`,
`invoke_model_with_response_stream`, unmodified, in a thread) against the bridge on a
real uvicorn socket, translated to the fake Messages upstream with the bridge's key."""

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EventStreamError
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.rollout.routes import Arm, Match, Route, fingerprint
from tests.fakes.servers import request_body, serving
from tests.fakes.upstream import FakeUpstream

PROMPT = "\n\nHuman: Hello there\n\nAssistant:"
ENVIRON = {"UPSTREAM_KEY": "sk-bridge", "AWS_KEYS": "AKIDBRIDGE secret-of-bridge"}
APP_SECRET = "app-secret"  # a sidecar takes any signature as it comes
Stack = Callable[..., Awaitable[tuple[str, FakeUpstream]]]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """build(**settings) -> (bridge URL, upstream), both on loopback sockets."""
    async with contextlib.AsyncExitStack() as servers:

        async def build(**settings: Any) -> tuple[str, FakeUpstream]:
            upstream = FakeUpstream()
            upstream_url = await servers.enter_async_context(serving(upstream))
            config = Settings(upstream_url=upstream_url, upstream_key="env:UPSTREAM_KEY")
            for name, value in settings.items():
                config = config.__class__(**{**_fields(config), name: value})
            app = create_app(config, environ=ENVIRON)
            return await servers.enter_async_context(serving(app)), upstream

        yield build


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


@contextlib.contextmanager
def runtime_client(url: str, key: str = "AKIDAPP", secret: str = APP_SECRET) -> Iterator[Any]:
    """boto3's bedrock-runtime client of an app, its connections closed after."""
    client = boto3.session.Session().client(  # not boto3's default session: made once
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        yield client
    finally:
        client.close()


def body(prompt: str = PROMPT, **fields: Any) -> str:
    legacy = {"prompt": prompt, "max_tokens_to_sample": 50, **fields}
    return json.dumps({**legacy, "anthropic_version": "bedrock-2023-05-31"})


def invoke(url: str, model: str = "anthropic.claude-v2", **options: Any) -> dict[str, Any]:
    with runtime_client(url, **options) as client:
        response = client.invoke_model(modelId=model, body=body())
        return {
            "body": json.loads(response["body"].read()),
            "headers": response["ResponseMetadata"]["HTTPHeaders"],
        }


def stream(url: str, prompt: str = PROMPT) -> list[dict[str, Any]]:
    with runtime_client(url) as client:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-v2:1", body=body(prompt)
        )
        try:
            return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
        finally:
            response["body"].close()  # its connection, also after an exception event


def lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "complete"]


async def test_invoke_model_answers_in_bedrocks_legacy_shape(stack: Stack) -> None:
    url, upstream = await stack()
    with capture_logs() as logs:
        got = await asyncio.to_thread(invoke, url)
    assert got["body"] == {
        "completion": " echo: Hello there", "stop_reason": "stop_sequence", "stop": "\n\nHuman:",
    }  # fmt: skip
    headers = got["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    assert headers["x-amzn-bedrock-output-token-count"] == "3"
    assert re.fullmatch("[0-9a-f]{16}", headers["x-amzn-requestid"])  # the call_id
    [line] = lines(logs)
    assert line["bedrock_model"] == line["legacy_model"] == "anthropic.claude-v2"
    assert line["caller"] == fingerprint(b"AKIDAPP")  # who calls: the access key id
    assert (line["status"], line["upstream_model"]) == (200, "claude-sonnet-4-5")
    [request] = upstream.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-bridge"
    # The app's signature never goes upstream.
    assert not [name for name in request.headers if name == "authorization" or "amz" in name]


async def test_stream_is_an_event_stream_of_legacy_chunks(stack: Stack) -> None:
    url, _ = await stack()
    chunks = await asyncio.to_thread(stream, url)
    assert "".join(c["completion"] for c in chunks) == " echo: Hello there"
    assert all(c["stop_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert (last["stop_reason"], last["stop"]) == ("stop_sequence", "\n\nHuman:")
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (2, 3)


async def test_midstream_failure_is_an_exception_event(stack: Stack) -> None:
    url, _ = await stack()
    with pytest.raises(EventStreamError) as caught:
        await asyncio.to_thread(stream, url, "\n\nHuman: MIDSTREAM_ERROR a b c d\n\nAssistant:")
    assert caught.value.response["Error"]["Code"] == "serviceUnavailableException"


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("no turns at all", 400, "ValidationException"),
        ("\n\nHuman: FAIL 429\n\nAssistant:", 429, "ThrottlingException"),
        ("\n\nHuman: FAIL 529\n\nAssistant:", 503, "ServiceUnavailableException"),
        ("\n\nHuman: FAIL 504\n\nAssistant:", 408, "ModelTimeoutException"),
    ],
)
async def test_errors_are_bedrocks(stack: Stack, prompt: str, status: int, code: str) -> None:
    url, _ = await stack()

    def call() -> None:
        with runtime_client(url) as client:
            client.invoke_model(modelId="anthropic.claude-v2", body=body(prompt))

    with capture_logs() as logs, pytest.raises(ClientError) as caught:
        await asyncio.to_thread(call)
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)
    assert error["Error"]["Message"]
    assert {line["status"] for line in lines(logs)} == {status}  # the one the app got


async def test_routes_match_the_legacy_bedrock_model_id(stack: Stack) -> None:
    route = Route(
        "instant",
        match=Match(models=("anthropic.claude-instant-*",)),
        primary=Arm("translate", {"model": "claude-opus-4-1"}),
    )
    url, upstream = await stack(routes=(route,))
    with capture_logs() as logs:
        await asyncio.to_thread(invoke, url, "anthropic.claude-instant-v1")
        await asyncio.to_thread(invoke, url, "anthropic.claude-v2")
    assert [r.body["model"] for r in upstream.requests] == ["claude-opus-4-1", "claude-sonnet-4-5"]
    assert [line["route"] for line in lines(logs)] == ["instant", "default"]


async def test_shared_bridge_verifies_sigv4_against_its_access_keys(stack: Stack) -> None:
    url, upstream = await stack(bedrock_access_keys="env:AWS_KEYS")
    got = await asyncio.to_thread(invoke, url, key="AKIDBRIDGE", secret="secret-of-bridge")
    assert got["body"]["completion"] == " echo: Hello there"
    for key, secret in [("AKIDBRIDGE", "wrong"), ("AKIDOTHER", "secret-of-bridge")]:
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(invoke, url, key=key, secret=secret)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert len(upstream.requests) == 1


async def test_shared_bridge_takes_a_bearer_key(stack: Stack) -> None:
    url, _ = await stack(client_keys="env:UPSTREAM_KEY")
    async with httpx.AsyncClient(base_url=url) as client:
        path = "/model/anthropic.claude-v2/invoke"
        ok = await client.post(path, content=body(), headers={"authorization": "Bearer sk-bridge"})
        refused = await client.post(path, content=body(), headers={"authorization": "Bearer no"})
    with pytest.raises(ClientError) as signed:
        await asyncio.to_thread(invoke, url)  # a signature: not what this bridge takes
    assert ok.status_code == 200 and ok.json()["completion"] == " echo: Hello there"
    assert (refused.status_code, refused.headers["x-amzn-errortype"]) == (
        403, "AccessDeniedException",
    )  # fmt: skip
    assert signed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def legacy_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that still serves /v1/complete (the 2023-06-01 stream format)."""
    if scope["type"] != "http":
        return
    body = json.loads(await request_body(receive))
    seen = {n.decode(): v.decode() for n, v in scope["headers"]}
    LEGACY_CALLS.append((scope["path"], seen, body))
    answer = {"type": "completion", "completion": " legacy", "model": body["model"]}
    answer |= {"stop_reason": "stop_sequence", "stop": "\n\nHuman:", "log_id": "c", "id": "c"}
    if body.get("stream"):
        events = [{**answer, "stop_reason": None, "stop": None}, {**answer, "completion": ""}]
        content = b"".join(
            b"event: completion\ndata: %s\n\n" % json.dumps(e).encode() for e in events
        )
        kind = b"text/event-stream"
    else:
        content, kind = json.dumps(answer).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": content})


LEGACY_CALLS: list[tuple[str, dict[str, str], dict[str, Any]]] = []


async def test_a_passthrough_arm_sends_the_legacy_body(stack: Stack) -> None:
    """A route that passes Bedrock calls on to an upstream still serving /v1/complete."""
    async with serving(legacy_upstream) as legacy:
        route = Route(
            "legacy",
            mode="passthrough",
            primary=Arm("passthrough", {"upstream_url": legacy, "model": "claude-2.1"}),
        )
        url, _ = await stack(routes=(route,))
        LEGACY_CALLS.clear()
        got = await asyncio.to_thread(invoke, url)
        chunks = await asyncio.to_thread(stream, url)
    assert got["body"] == {
        "completion": " legacy",
        "stop_reason": "stop_sequence",
        "stop": "\n\nHuman:",
    }
    assert [c["completion"] for c in chunks] == [" legacy", ""]
    assert chunks[-1]["stop_reason"] == "stop_sequence"
    [(path, headers, body), _] = LEGACY_CALLS
    assert (path, body["model"], body["stream"]) == ("/v1/complete", "claude-2.1", False)
    assert headers["x-api-key"] == "sk-bridge"
    assert "authorization" not in headers and "anthropic_version" not in body


def signed(url: str, content: bytes, stamp: str | None = None) -> dict[str, str]:
    """The headers botocore's signer gives a call to `url` with `content` at `stamp`
    (an X-Amz-Date; now when None)."""
    request = AWSRequest("POST", url, data=content)
    request.context["timestamp"] = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    signer = SigV4Auth(Credentials(*ENVIRON["AWS_KEYS"].split()), "bedrock", "us-east-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    return dict(request.headers)


async def test_a_signature_covers_the_body_and_the_time(stack: Stack) -> None:
    url, upstream = await stack(bedrock_access_keys="env:AWS_KEYS")
    path = "/model/anthropic.claude-v2/invoke"
    sent = body().encode()
    async with httpx.AsyncClient(base_url=url) as client:
        ok = await client.post(path, content=sent, headers=signed(url + path, sent))
        tampered = await client.post(
            path, content=sent.replace(b"50", b"60"), headers=signed(url + path, sent)
        )
        old = signed(url + path, sent, "20200101T000000Z")
        stale = await client.post(path, content=sent, headers=old)
        unsigned_host = signed(url + path, sent)
        unsigned_host["Authorization"] = unsigned_host["Authorization"].replace(
            "SignedHeaders=host;", "SignedHeaders="
        )
        no_host = await client.post(path, content=sent, headers=unsigned_host)
    assert ok.status_code == 200
    for refused, why in [(tampered, "does not match"), (stale, "too old"), (no_host, "host")]:
        assert (refused.status_code, refused.headers["x-amzn-errortype"]) == (
            403, "AccessDeniedException",
        )  # fmt: skip
        assert why in refused.json()["message"]
    assert len(upstream.requests) == 1
