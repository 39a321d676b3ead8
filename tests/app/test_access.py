"""Keys and access: the optional client allow-list, the bridge-held upstream key, and
the upstream host that no request can change."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from proxy.cli import main
from proxy.config.access import Access, presented_key, read_secret
from proxy.config.settings import ConfigError, Settings, apply
from proxy.edge.app import create_app
from tests.fakes.factories import legacy_body, message
from tests.fakes.loopback import Handler, loopback, running
from tests.fakes.servers import serving

ISSUED = "cb-issued-key-one"
UPSTREAM_KEY = "sk-ant-bridge-held-upstream-key"
V2 = {"anthropic-version": "2023-06-01"}


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([(b"x-api-key", b" k1 ")], b"k1"),
        ([(b"Authorization", b"Bearer t1")], b"t1"),
        ([(b"authorization", b"bearer t1"), (b"X-Api-Key", b"k1")], b"k1"),
        ([(b"authorization", b"Basic dTpw")], None),
        ([], None),
    ],
)
def test_the_presented_key_is_x_api_key_then_bearer(
    headers: list[tuple[bytes, bytes]], key: bytes | None
) -> None:
    assert presented_key(headers) == key


def test_secret_references_read_the_environment_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(" s3cret \n")
    assert read_secret("env:K", {"K": "v "}, "upstream_key") == "v"
    assert read_secret(f"file:{tmp_path / 'k'}", {}, "upstream_key") == "s3cret"
    with pytest.raises(ConfigError, match="upstream_key: environment variable K is not set"):
        read_secret("env:K", {}, "upstream_key")
    with pytest.raises(ConfigError, match=r"client_keys: cannot read .*/nope \(No such file"):
        read_secret(f"file:{tmp_path / 'nope'}", {}, "client_keys")


@pytest.mark.parametrize("value", ["sk-ant-api03-literal", "env:", "vault:x", "file"])
def test_config_takes_references_never_the_key_itself(value: str) -> None:
    with pytest.raises(ConfigError, match="expected env:NAME or file:PATH"):
        apply(Settings(), {"upstream_key": value}, str)


def keys_file(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "client-keys"
    path.write_text(text)
    return Settings(upstream_url="http://upstream.test", client_keys=f"file:{path}")


def test_keys_file_takes_keys_and_digests_and_comments(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"cb-two").hexdigest()
    settings = keys_file(tmp_path, f"# issued 2026-11\n{ISSUED}\nsha256:{digest}, cb-three\n")
    access = Access.load(settings, {})
    for key in (ISSUED, "cb-two", "cb-three"):
        assert access.admits([(b"x-api-key", key.encode())])
    for refused in ([(b"x-api-key", b"cb-four")], [(b"x-api-key", b"")], []):
        assert not access.admits(refused)
    assert access.admits([(b"authorization", b"Bearer cb-two")])


@pytest.mark.parametrize(
    ("text", "message"),
    [("# nothing\n", "no keys in it"), ("sha256:abcd\n", "not 64 hex digits")],
)
def test_a_keys_file_that_admits_nobody_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Access.load(keys_file(tmp_path, text), {})


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        if request.url.path == "/v1/messages":
            return httpx.Response(200, json=message("ok"))
        return httpx.Response(200, json={"data": []})


@asynccontextmanager
async def client_for(
    settings: Settings, upstream: Handler, environ: Mapping[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with loopback(upstream) as url:
        app = create_app(replace(settings, upstream_url=url), environ=environ)
        transport = httpx.ASGITransport(app=app)
        async with running(app), httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            yield c


async def test_the_allow_list_admits_issued_keys_and_spends_the_bridge_key(tmp_path: Path) -> None:
    """A shared bridge: only bridge-issued keys pass, on every path but health; the
    upstream sees the bridge's key, never the caller's."""
    settings = keys_file(tmp_path, ISSUED + "\n")
    settings = apply(settings, {"upstream_key": "env:ANTHROPIC_API_KEY"}, str)
    upstream = Recorder()
    async with client_for(settings, upstream, {"ANTHROPIC_API_KEY": UPSTREAM_KEY}) as client:
        ok = await client.post(
            "/v1/complete", json=legacy_body(), headers={**V2, "authorization": f"Bearer {ISSUED}"}
        )
        assert ok.status_code == 200
        models = await client.get("/v1/models", headers={"x-api-key": ISSUED})
        assert models.status_code == 200
        for path, key in [("/v1/complete", "sk-ant-not-issued"), ("/v1/models", None)]:
            headers = {**V2, "x-api-key": key} if key else V2
            if path == "/v1/complete":
                refused = await client.post(path, json=legacy_body(), headers=headers)
            else:
                refused = await client.get(path, headers=headers)
            assert refused.status_code == 401
            assert refused.json() == {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            }
            assert refused.headers["x-should-retry"] == "false"
        assert (await client.get("/healthz")).status_code == 200
    assert len(upstream.requests) == 2
    for sent in upstream.requests:
        assert sent.headers["x-api-key"] == UPSTREAM_KEY
        assert "authorization" not in sent.headers


async def test_a_sidecar_key_replaces_whatever_the_app_sends(tmp_path: Path) -> None:
    """Without an allow-list the bridge admits anyone and still spends its own key."""
    key_file = tmp_path / "key"
    key_file.write_text(UPSTREAM_KEY + "\n")
    settings = Settings(upstream_url="http://upstream.test", upstream_key=f"file:{key_file}")
    upstream = Recorder()
    async with client_for(settings, upstream) as client:
        response = await client.post(
            "/v1/complete", json=legacy_body(), headers={**V2, "x-api-key": "placeholder"}
        )
    assert response.status_code == 200
    assert upstream.requests[0].headers["x-api-key"] == UPSTREAM_KEY


def test_serve_refuses_to_start_when_a_secret_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"BRIDGE_UPSTREAM_KEY": "env:ANTHROPIC_API_KEY", "BRIDGE_LOG_FORMAT": "console"}
    code = main(["serve"], environ)
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "complete-bridge: error: upstream_key: environment variable ANTHROPIC_API_KEY is not set"
    )


class Seen:
    """A loopback upstream that records each request's target and Host header."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = dict(scope["headers"]).get(b"host", b"")
        self.requests.append((scope["raw_path"], host))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize(
    "target",
    [b"//evil.test/v1/models", b"http://evil.test/v1/models", b"/v1/models?u=http://evil.test"],
)
async def test_no_request_target_or_host_header_moves_the_upstream(target: bytes) -> None:
    """Whatever the request line or Host says, the call goes to the configured upstream."""
    upstream = Seen()
    async with (
        serving(upstream) as upstream_url,
        serving(create_app(Settings(upstream_url=upstream_url))) as bridge_url,
    ):
        bridge_host, port = bridge_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(bridge_host, int(port))
        writer.write(
            b"GET " + target + b" HTTP/1.1\r\nhost: evil.test\r\nconnection: close\r\n\r\n"
        )
        status = (await asyncio.wait_for(reader.readline(), 10)).split()[1]
        writer.close()
    assert status == b"200"
    [(path, host)] = upstream.requests
    assert host == upstream_url.removeprefix("http://").encode()
    assert path.endswith(b"/v1/models")
