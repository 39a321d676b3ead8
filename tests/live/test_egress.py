"""Egress as the SDKs did it, on real processes and real sockets: a TLS upstream on
loopback signed by a CA made in the test, trusted through upstream_ca_file or
SSL_CERT_FILE and refused (502, naming the certificate problem) when signed by another; a
real forward proxy (tinyproxy) that the calls provably went through, with basic auth
whose password reaches no output; NO_PROXY; upstream_proxy over HTTPS_PROXY; a client
certificate for an upstream that demands one."""

import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from proxy.config.network import STANDARD_VARIABLES
from tests.fakes.factories import legacy_body
from tests.fakes.network import Authority, authority, forward_proxy
from tests.fakes.servers import bridge_process, free_port, run_cli, serving
from tests.fakes.upstream import FakeUpstream

ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the TLS upstream lives there

V2 = {"x-api-key": "sk-ant-test-egress", "anthropic-version": "2023-06-01"}
PASSWORD = "pr0xy-CANARY-password"
# None of the standard variables of the test's own environment reach the bridge.
CLEAN = {name: "" for variable in STANDARD_VARIABLES for name in (variable, variable.upper())}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return authority(tmp_path_factory.mktemp("ca"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tls_upstream(ca: Authority) -> AsyncIterator[str]:
    """The fake Messages API over TLS, its certificate signed by `ca`."""
    options = {"ssl_certfile": str(ca.cert_file), "ssl_keyfile": str(ca.key_file)}
    async with serving(FakeUpstream(), **options) as url:
        yield url.replace("http://", "https://")


async def call(
    upstream_url: str, tmp_path: Path, env: Mapping[str, str]
) -> tuple[httpx.Response, str]:
    """One legacy call through a bridge process with `env`; its answer and whole log."""
    log = tmp_path / "bridge.log"
    async with (
        bridge_process(upstream_url, log, env={**CLEAN, **env}) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
    ):
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
        await bridge.wait_for("complete")
    return response, log.read_text()


@ON_MODULE_LOOP
async def test_a_private_ca_in_upstream_ca_file_is_trusted(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    response, log = await call(tls_upstream, tmp_path, {"BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file)})
    assert response.status_code == 200, response.text
    assert response.json()["completion"]
    assert '"upstream_trust":"upstream_ca_file"' in log


@ON_MODULE_LOOP
async def test_ssl_cert_file_is_honoured_as_the_sdks_did(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    response, log = await call(tls_upstream, tmp_path, {"SSL_CERT_FILE": str(ca.ca_file)})
    assert response.status_code == 200, response.text
    assert '"upstream_trust":"SSL_CERT_FILE"' in log


@ON_MODULE_LOOP
async def test_ssl_cert_dir_is_honoured(tls_upstream: str, ca: Authority, tmp_path: Path) -> None:
    hashed = tmp_path / "certs"
    hashed.mkdir()
    # The OpenSSL directory form: the CA under its subject hash.
    digest = ssl.PEM_cert_to_DER_cert(ca.ca_file.read_text())
    assert digest  # a real certificate
    name = _subject_hash(ca.ca_file)
    (hashed / f"{name}.0").write_bytes(ca.ca_file.read_bytes())
    response, _ = await call(tls_upstream, tmp_path, {"SSL_CERT_DIR": str(hashed)})
    assert response.status_code == 200, response.text


def _subject_hash(ca_file: Path) -> str:
    import subprocess

    done = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash", "-in", str(ca_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@ON_MODULE_LOOP
async def test_a_wrong_ca_is_a_502_naming_the_certificate_problem(
    tls_upstream: str, tmp_path: Path
) -> None:
    other = authority(tmp_path / "other", "other")
    response, _ = await call(
        tls_upstream, tmp_path, {"BRIDGE_UPSTREAM_CA_FILE": str(other.ca_file)}
    )
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message == "upstream TLS certificate not trusted: unable to get local issuer certificate"


@ON_MODULE_LOOP
async def test_calls_go_through_the_https_proxy_with_basic_auth(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    async with forward_proxy(tmp_path / "proxy", "alice", PASSWORD) as proxy:
        authed = proxy.url.replace("http://", f"http://alice:{PASSWORD}@")
        env = {"HTTPS_PROXY": authed, "BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file)}
        response, log = await call(tls_upstream, tmp_path, env)
        assert response.status_code == 200, response.text
        upstream_port = tls_upstream.rsplit(":", 1)[1]
        assert proxy.connects() == [f"127.0.0.1:{upstream_port}"]
    assert PASSWORD not in log and "alice" not in log
    assert f'"upstream_proxy":"{proxy.url}"' in log


@ON_MODULE_LOOP
async def test_a_proxy_refusing_the_credentials_is_a_502_saying_so(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    async with forward_proxy(tmp_path / "proxy", "alice", "the-right-one") as proxy:
        wrong = proxy.url.replace("http://", f"http://alice:{PASSWORD}@")
        env = {"https_proxy": wrong, "BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file)}
        response, log = await call(tls_upstream, tmp_path, env)
    assert response.status_code == 502
    # tinyproxy refuses a CONNECT with bad credentials 401 (most proxies say 407): as it came
    assert response.json()["error"]["message"] == "upstream proxy refused the request: 401"
    assert PASSWORD not in log and PASSWORD not in response.text


@ON_MODULE_LOOP
async def test_no_proxy_sends_the_upstream_past_the_proxy(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    async with forward_proxy(tmp_path / "proxy") as proxy:
        env = {
            "HTTPS_PROXY": proxy.url,
            "NO_PROXY": "example.com, .internal,127.0.0.1",
            "BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file),
        }
        response, log = await call(tls_upstream, tmp_path, env)
        assert response.status_code == 200, response.text
        assert proxy.connects() == []
    assert '"upstream_proxy":null' in log


@ON_MODULE_LOOP
async def test_upstream_proxy_wins_over_https_proxy(
    tls_upstream: str, ca: Authority, tmp_path: Path
) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"  # no proxy there: the call would fail
    async with forward_proxy(tmp_path / "proxy") as proxy:
        env = {
            "HTTPS_PROXY": nothing,
            "NO_PROXY": "",
            "BRIDGE_UPSTREAM_PROXY": proxy.url,
            "BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file),
        }
        response, _ = await call(tls_upstream, tmp_path, env)
        assert response.status_code == 200, response.text
        assert len(proxy.connects()) == 1


@ON_MODULE_LOOP
async def test_an_unreachable_proxy_is_a_502_naming_the_proxy(
    tls_upstream: str, tmp_path: Path
) -> None:
    env = {"BRIDGE_UPSTREAM_PROXY": f"http://127.0.0.1:{free_port()}"}
    response, _ = await call(tls_upstream, tmp_path, env)
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "upstream proxy unreachable: could not connect"


@ON_MODULE_LOOP
async def test_a_client_certificate_for_an_upstream_that_demands_one(
    ca: Authority, tmp_path: Path
) -> None:
    clients = authority(tmp_path / "clients", "clients")
    cert, key = clients.issue(tmp_path, "bridge-client")
    options: dict[str, Any] = {
        "ssl_certfile": str(ca.cert_file),
        "ssl_keyfile": str(ca.key_file),
        "ssl_ca_certs": str(clients.ca_file),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    trust = {"BRIDGE_UPSTREAM_CA_FILE": str(ca.ca_file)}
    async with serving(FakeUpstream(), **options) as url:
        mtls = url.replace("http://", "https://")
        refused, _ = await call(mtls, tmp_path, trust)
        client_cert = {
            "BRIDGE_UPSTREAM_CLIENT_CERT": str(cert),
            "BRIDGE_UPSTREAM_CLIENT_KEY": str(key),
        }
        shown, log = await call(mtls, tmp_path, {**trust, **client_cert})
    assert refused.status_code == 502
    assert shown.status_code == 200, shown.text
    assert f'"upstream_client_cert":"{cert}"' in log


def test_check_config_names_each_network_setting_at_fault(tmp_path: Path, ca: Authority) -> None:
    cases = {
        f'upstream_proxy = "socks5://bob:{PASSWORD}@proxy:1080"': "upstream_proxy: expected "
        "an http:// proxy URL",
        'upstream_ca_file = "/nonexistent/ca.pem"': "upstream_ca_file: expected the path of "
        "a PEM file of CA certificates",
        f'upstream_ca_file = "{tmp_path / "config.toml"}"': "upstream_ca_file: expected",
        f'upstream_client_cert = "{ca.cert_file}"': "upstream_client_key: required with "
        "upstream_client_cert",
        f'upstream_client_cert = "{ca.cert_file}"\nupstream_client_key = "{ca.ca_file}"': (
            "upstream_client_cert, upstream_client_key: not a PEM certificate and its key"
        ),
    }
    for line, error in cases.items():
        config = tmp_path / "config.toml"
        config.write_text(line + "\n")
        done = run_cli("check-config", str(config), env=CLEAN)
        assert done.returncode == 2, (line, done.stdout)
        assert error in done.stderr, (line, done.stderr)
        assert f"{config}:1:" in done.stderr or f"{config}:2:" in done.stderr
        assert PASSWORD not in done.stderr + done.stdout


def test_check_config_says_where_calls_go_and_never_the_password(
    tmp_path: Path, ca: Authority
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'upstream_proxy = "http://bob:{PASSWORD}@proxy.corp.example:3128"\n'
        f'upstream_ca_file = "{ca.ca_file}"\n'
        f'tls_cert_file = "{ca.cert_file}"\ntls_key_file = "{ca.key_file}"\nworkers = 2\n'
    )
    done = run_cli("check-config", str(config), env=CLEAN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "upstream egress: http://proxy.corp.example:3128; CAs from upstream_ca_file" in lines
    assert f"listening: TLS with {ca.cert_file}, 2 worker processes" in lines
    assert PASSWORD not in done.stdout and "bob" not in done.stdout
    env = {**CLEAN, "HTTPS_PROXY": f"http://bob:{PASSWORD}@proxy.corp.example:3128"}
    config.write_text("")
    done = run_cli("check-config", str(config), env=env)
    assert "upstream egress: http://proxy.corp.example:3128; CAs from certifi's bundle" in (
        done.stdout.splitlines()
    )
    assert PASSWORD not in done.stdout


@ON_MODULE_LOOP
async def test_an_http_upstream_goes_through_http_proxy_with_basic_auth(tmp_path: Path) -> None:
    """Plain HTTP through a proxy: each request in absolute form, the credentials on it; a
    proxy refusing them is a 502 saying so, not the proxy's page relayed as the answer."""
    async with (
        serving(FakeUpstream()) as upstream_url,
        forward_proxy(tmp_path / "proxy", "alice", "the-right-one") as proxy,
    ):
        right = proxy.url.replace("http://", "http://alice:the-right-one@")
        response, log = await call(upstream_url, tmp_path, {"HTTP_PROXY": right})
        assert response.status_code == 200, response.text
        assert proxy.requests() == [("POST", upstream_url + "/v1/messages")]
        # No credentials: the proxy's 407 (tinyproxy answers wrong ones 401 with
        # WWW-Authenticate, which cannot be told from the upstream's own 401).
        refused, _ = await call(upstream_url, tmp_path, {"http_proxy": proxy.url})
    assert "the-right-one" not in log
    assert refused.status_code == 502
    assert refused.json()["error"]["message"] == "upstream proxy refused the request: 407"
