"""Legacy Bedrock calls answered on Bedrock's Messages form: boto3 (unmodified, in a
thread) calls the bridge on a real uvicorn socket, and the bridge calls the fake Bedrock
Runtime (tests/fakes/bedrock.py), signed with its own AWS credentials from botocore's
standard chain, which the fake verifies."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError
from structlog.testing import capture_logs

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from proxy.rollout.routes import Arm, Match, Route
from proxy.upstream.answer import Answer
from proxy.upstream.memory import MemoryTransport
from proxy.upstream.sigv4 import NoCredentials, Signing
from proxy.upstream.transport import Request
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.bedrock_apps import body, invoke, runtime_client, stream
from tests.fakes.servers import serving
from tests.fakes.upstream import FakeUpstream

BRIDGE_KEY, BRIDGE_SECRET, BRIDGE_TOKEN = "AKIDBRIDGE", "bridge-secret", "bridge-token"
Stack = Callable[..., Awaitable[tuple[str, FakeBedrock]]]


@pytest.fixture
def aws_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The bridge's AWS credentials in its environment; no files, no instance role."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BRIDGE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BRIDGE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", BRIDGE_TOKEN)
    return monkeypatch


@pytest.fixture
async def stack(aws_environ: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """build(**settings) -> (bridge URL, fake Bedrock), both on loopback sockets."""
    async with contextlib.AsyncExitStack() as servers:

        async def build(
            token: str | None = BRIDGE_TOKEN, **settings: Any
        ) -> tuple[str, FakeBedrock]:
            bedrock = FakeBedrock(BRIDGE_KEY, BRIDGE_SECRET, token)
            url = await servers.enter_async_context(serving(bedrock))
            config = Settings(upstream_url=url, upstream_aws_region="us-east-1", **settings)
            return await servers.enter_async_context(serving(create_app(config))), bedrock

        yield build


async def test_call_goes_to_bedrocks_messages_form_signed_by_the_bridge(stack: Stack) -> None:
    url, bedrock = await stack()
    got = await asyncio.to_thread(invoke, url, "anthropic.claude-v2")
    assert got["body"] == {
        "completion": " echo: Hello there", "stop_reason": "stop_sequence", "stop": "\n\nHuman:",
    }  # fmt: skip
    assert got["headers"]["x-amzn-bedrock-output-token-count"] == "3"
    [request] = bedrock.requests  # verified: signed with the bridge's key, not the app's
    assert request.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={BRIDGE_KEY}/")
    assert "x-api-key" not in request.headers
    assert request.body["anthropic_version"] == "bedrock-2023-05-31"
    assert request.body["messages"] == [{"role": "user", "content": "Hello there"}]


async def test_stream_comes_through_both_event_streams(stack: Stack) -> None:
    url, bedrock = await stack()
    chunks = await asyncio.to_thread(stream, url)
    assert "".join(c["completion"] for c in chunks) == " echo: Hello there"
    assert chunks[-1]["stop_reason"] == "stop_sequence"
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 3
    assert bedrock.requests[0].path.endswith("/invoke-with-response-stream")


async def test_midstream_bedrock_failure_is_an_exception_event(stack: Stack) -> None:
    url, _ = await stack()
    with pytest.raises(EventStreamError) as caught:
        await asyncio.to_thread(stream, url, "\n\nHuman: MIDSTREAM_ERROR a b c d\n\nAssistant:")
    assert caught.value.response["Error"]["Code"] == "serviceUnavailableException"


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("\n\nHuman: FAIL 429\n\nAssistant:", 429, "ThrottlingException"),
        ("\n\nHuman: FAIL 500\n\nAssistant:", 500, "InternalServerException"),
    ],
)
async def test_bedrock_errors_reach_the_app_as_bedrocks(
    stack: Stack, prompt: str, status: int, code: str
) -> None:
    url, _ = await stack()

    def call() -> None:
        with runtime_client(url) as client:
            client.invoke_model(modelId="anthropic.claude-v2", body=body(prompt))

    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(call)
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)


async def test_route_names_an_inference_profile(stack: Stack) -> None:
    profile = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    route = Route(
        "instant",
        match=Match(models=("anthropic.claude-instant-*",)),
        primary=Arm("translate", {"model": profile}),
    )
    url, bedrock = await stack(routes=(route,))
    got = await asyncio.to_thread(invoke, url, "anthropic.claude-instant-v1")
    assert got["body"]["completion"] == " echo: Hello there"
    assert bedrock.requests[0].path == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke"


async def test_a_wrong_bridge_credential_is_refused_by_bedrock(stack: Stack) -> None:
    url, bedrock = await stack(token="another-token")  # the fake expects another session
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(invoke, url)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert not bedrock.requests


async def test_credentials_come_from_a_profile(
    stack: Stack, aws_environ: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The standard chain: with no keys in the environment, the named profile's."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        aws_environ.delenv(name)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[bridge]\naws_access_key_id = {BRIDGE_KEY}\naws_secret_access_key = {BRIDGE_SECRET}\n"
    )
    aws_environ.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    aws_environ.setenv("AWS_PROFILE", "bridge")
    url, bedrock = await stack(token=None)
    got = await asyncio.to_thread(invoke, url)
    assert got["body"]["completion"] == " echo: Hello there"
    assert len(bedrock.requests) == 1


@pytest.mark.parametrize(
    ("container", "why"),
    [(None, "none found"), ("http://127.0.0.1:9/", "CredentialRetrievalError")],
)
async def test_no_credentials_anywhere_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, container: str | None, why: str
) -> None:
    """None in the chain; or a provider of it failing (a container role unreachable on
    loopback): a clear error, nothing sent unsigned."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    if container is not None:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", container)

    async def bedrock(request: Request) -> Answer:
        raise AssertionError("never sent unsigned")

    request = Request("POST", "http://bedrock.test/model/m/invoke", [], b"{}")
    with pytest.raises(NoCredentials, match=f"no AWS credentials.*: {why}"):
        await Signing(MemoryTransport(bedrock), "us-east-1").send(request)


async def test_shadow_asks_bedrock_while_the_anthropic_api_answers(
    aws_environ: pytest.MonkeyPatch,
) -> None:
    """A shadow route: the Anthropic API answers the app; Bedrock's Messages form is asked
    the same call in the background, and the two answers are compared in the log."""
    bedrock, messages = FakeBedrock(BRIDGE_KEY, BRIDGE_SECRET, BRIDGE_TOKEN), FakeUpstream()
    async with serving(bedrock) as bedrock_url, serving(messages) as messages_url:
        on_bedrock = {"upstream_url": bedrock_url, "upstream_aws_region": "us-east-1"}
        route = Route(
            "try-bedrock",
            mode="shadow",
            primary=Arm("translate"),
            secondary=Arm("translate", on_bedrock),
            percent=100,
        )
        config = Settings(upstream_url=messages_url, upstream_key="env:KEY", routes=(route,))
        with capture_logs() as logs:
            async with serving(create_app(config, environ={"KEY": "sk-bridge"})) as url:
                got = await asyncio.to_thread(invoke, url)
                async with asyncio.timeout(5):
                    while not [line for line in logs if line["event"] == "shadow"]:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
    assert got["body"]["completion"] == " echo: Hello there"
    assert len(messages.requests) == len(bedrock.requests) == 1
    [shadow] = [line for line in logs if line["event"] == "shadow"]
    assert (shadow["status"], shadow["exact_match"], shadow["legacy_model"]) == (
        200, True, "anthropic.claude-v2",
    )  # fmt: skip
