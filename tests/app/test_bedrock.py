"""Bedrock's legacy Claude calls, made by boto3 itself (`invoke_model`,
`invoke_model_with_response_stream`, unmodified, in a thread) against the bridge on a
real uvicorn socket, translated to the fake Messages upstream with the bridge's key (or
passed on to an upstream still serving /v1/complete)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from proxy.rollout.routes import Arm, Match, Route, fingerprint
from tests.fakes.bedrock_apps import Build, body, bridges, invoke, lines, runtime_client, stream
from tests.fakes.servers import request_body, serving


@pytest.fixture
async def stack() -> AsyncIterator[Build]:
    async with bridges() as build:
        yield build


async def test_invoke_model_answers_in_bedrocks_legacy_shape(stack: Build) -> None:
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


async def test_stream_is_an_event_stream_of_legacy_chunks(stack: Build) -> None:
    url, _ = await stack()
    chunks = await asyncio.to_thread(stream, url)
    assert "".join(c["completion"] for c in chunks) == " echo: Hello there"
    assert all(c["stop_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert (last["stop_reason"], last["stop"]) == ("stop_sequence", "\n\nHuman:")
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (2, 3)


async def test_midstream_failure_is_an_exception_event(stack: Build) -> None:
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
async def test_errors_are_bedrocks(stack: Build, prompt: str, status: int, code: str) -> None:
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


async def test_routes_match_the_legacy_bedrock_model_id(stack: Build) -> None:
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


async def test_a_passthrough_arm_sends_the_legacy_body(stack: Build) -> None:
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
