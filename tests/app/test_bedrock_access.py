"""Who may make a Bedrock call, on the wire: a shared bridge verifies boto3's SigV4
signature against its `bedrock_access_keys` (botocore's signer recomputed: the body, the
host and the time are covered), or takes a bearer key from `client_keys`."""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.fakes.bedrock_apps import ENVIRON, Build, body, bridges, invoke


@pytest.fixture
async def stack() -> AsyncIterator[Build]:
    async with bridges() as build:
        yield build


async def test_shared_bridge_verifies_sigv4_against_its_access_keys(stack: Build) -> None:
    url, upstream = await stack(bedrock_access_keys="env:AWS_KEYS")
    got = await asyncio.to_thread(invoke, url, key="AKIDBRIDGE", secret="secret-of-bridge")
    assert got["body"]["completion"] == " echo: Hello there"
    for key, secret in [("AKIDBRIDGE", "wrong"), ("AKIDOTHER", "secret-of-bridge")]:
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(invoke, url, key=key, secret=secret)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert len(upstream.requests) == 1


async def test_shared_bridge_takes_a_bearer_key(stack: Build) -> None:
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


async def test_a_signature_covers_the_body_and_the_time(stack: Build) -> None:
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
