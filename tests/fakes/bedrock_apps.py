"""Bedrock apps for the tests: boto3's bedrock-runtime client calling the bridge (its
connections closed after), the legacy Bedrock body, and the bridge on a loopback socket
in front of the fake Messages upstream, with its own key."""

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import boto3
from botocore.config import Config

from proxy.config.settings import Settings
from proxy.edge.app import create_app
from tests.fakes.servers import serving
from tests.fakes.upstream import FakeUpstream

PROMPT = "\n\nHuman: Hello there\n\nAssistant:"
ENVIRON = {"UPSTREAM_KEY": "sk-bridge", "AWS_KEYS": "AKIDBRIDGE secret-of-bridge"}
APP_SECRET = "app-secret"  # a sidecar takes any signature as it comes
# build(**settings) -> (bridge URL, upstream)
Build = Callable[..., Awaitable[tuple[str, FakeUpstream]]]


@contextlib.asynccontextmanager
async def bridges() -> AsyncIterator[Build]:
    """Bridges (settings as given, ENVIRON for their secrets) each in front of a fake
    Messages upstream, both on loopback sockets, stopped after."""
    async with contextlib.AsyncExitStack() as servers:

        async def build(**settings: Any) -> tuple[str, FakeUpstream]:
            upstream = FakeUpstream()
            upstream_url = await servers.enter_async_context(serving(upstream))
            config = Settings(upstream_url=upstream_url, upstream_key="env:UPSTREAM_KEY")
            app = create_app(dataclasses.replace(config, **settings), environ=ENVIRON)
            return await servers.enter_async_context(serving(app)), upstream

        yield build


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
