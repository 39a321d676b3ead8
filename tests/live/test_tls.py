"""TLS on the listening side, on a real bridge process and real TLS clients: calls over
TLS with the CA made in the test; on SIGHUP the certificate files are read again and the
next handshake presents the new certificate while an open connection keeps working;
files that do not load make the reload refused, and the certificate in use stays."""

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from tests.fakes.factories import legacy_body
from tests.fakes.network import Authority, authority
from tests.fakes.servers import BridgeProcess, bridge_process

V2 = {"x-api-key": "sk-ant-test-tls", "anthropic-version": "2023-06-01"}


def trusting(ca: Authority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.ca_file))


@contextlib.asynccontextmanager
async def tls_bridge(
    tmp_path: Path, ca: Authority, env: dict[str, str] | None = None
) -> AsyncIterator[BridgeProcess]:
    """`complete-bridge serve` on demo: with TLS, its certificate files copied into
    `tmp_path` (so the test can replace them); ready (over TLS) when yielded."""
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(ca.cert_file.read_bytes())
    key.write_bytes(ca.key_file.read_bytes())
    tls = {"BRIDGE_TLS_CERT_FILE": str(cert), "BRIDGE_TLS_KEY_FILE": str(key)}
    async with bridge_process(
        "demo:", tmp_path / "bridge.log", env={**tls, **(env or {})}, tls=trusting(ca)
    ) as bridge:
        yield bridge


def presented(url: str) -> str:
    """The certificate the server presents to a new handshake (PEM, unverified)."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    return ssl.get_server_certificate((host, int(port)))


def leaf(ca: Authority) -> str:
    """The leaf certificate of `ca`'s server certificate file, as PEM."""
    text = ca.cert_file.read_text()
    return text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]


def same_certificate(a: str, b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(a) == ssl.PEM_cert_to_DER_cert(b)


async def test_calls_are_served_over_tls_and_plain_http_is_not(tmp_path: Path) -> None:
    ca = authority(tmp_path / "ca")
    async with (
        tls_bridge(tmp_path, ca) as bridge,
        httpx.AsyncClient(base_url=bridge.url, verify=trusting(ca), timeout=30) as client,
    ):
        response = await client.post("/v1/complete", json=legacy_body(), headers=V2)
        assert response.status_code == 200 and response.json()["completion"]
        assert same_certificate(await asyncio.to_thread(presented, bridge.url), leaf(ca))
        plain = bridge.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):  # no plain-text HTTP on a TLS port
            await client.get(plain + "/healthz")
        other = authority(tmp_path / "other", "other")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            async with httpx.AsyncClient(verify=trusting(other)) as stranger:
                await stranger.get(bridge.url + "/healthz")


async def test_sighup_reloads_the_certificate_for_new_handshakes(tmp_path: Path) -> None:
    old, new = authority(tmp_path / "old", "old"), authority(tmp_path / "new", "new")
    async with (
        tls_bridge(tmp_path, old) as bridge,
        httpx.AsyncClient(base_url=bridge.url, verify=trusting(old), timeout=30) as kept,
    ):
        assert (await kept.get("/healthz")).status_code == 200  # a connection opened before
        (tmp_path / "server.pem").write_bytes(new.cert_file.read_bytes())
        (tmp_path / "server.key").write_bytes(new.key_file.read_bytes())
        bridge.process.send_signal(signal.SIGHUP)
        (reloaded,) = await bridge.wait_for("tls.reloaded")
        assert reloaded["cert_file"] == str(tmp_path / "server.pem")
        assert same_certificate(await asyncio.to_thread(presented, bridge.url), leaf(new))
        async with httpx.AsyncClient(base_url=bridge.url, verify=trusting(new)) as fresh:
            assert (await fresh.post("/v1/complete", json=legacy_body(), headers=V2)).is_success
        assert (await kept.get("/healthz")).status_code == 200  # it keeps its handshake


async def test_files_that_do_not_load_leave_the_certificate_in_use(tmp_path: Path) -> None:
    ca = authority(tmp_path / "ca")
    async with tls_bridge(tmp_path, ca) as bridge:
        (tmp_path / "server.key").write_text("not a key\n")
        bridge.process.send_signal(signal.SIGHUP)
        (rejected,) = await bridge.wait_for("config.rejected")  # checked as check-config does
        problem = "tls_cert_file, tls_key_file: not a PEM certificate and its key"
        assert problem in rejected["error"] and not bridge.events("tls.reloaded")
        assert same_certificate(await asyncio.to_thread(presented, bridge.url), leaf(ca))
        async with httpx.AsyncClient(verify=trusting(ca)) as client:
            assert (await client.get(bridge.url + "/healthz")).status_code == 200


def test_certificates_reload_in_place_and_refuse_what_does_not_load(tmp_path: Path) -> None:
    """In process: the context a server holds is reloaded in place (a handshake on it now
    shows the new certificate); files that do not load leave the old one and say why;
    TLS turned off by a reload waits for a restart."""
    from proxy.config.settings import Settings
    from proxy.edge.tls import Certificates, server_context

    old, new = authority(tmp_path / "old", "old"), authority(tmp_path / "new", "new")
    settings = Settings(tls_cert_file=str(old.cert_file), tls_key_file=str(old.key_file))
    context = server_context(settings)
    assert context is not None and server_context(Settings()) is None
    certificates = Certificates(context, settings)
    with capture_logs() as logs:
        certificates.reload(Settings(tls_cert_file=str(new.cert_file), tls_key_file="/nope"))
        certificates.reload(
            Settings(tls_cert_file=str(new.cert_file), tls_key_file=str(new.key_file))
        )
        certificates.reload(Settings())
    assert [line["event"] for line in logs] == [
        "tls.reload_failed",
        "tls.reloaded",
        "tls.needs_restart",
    ]
    assert logs[1]["cert_file"] == str(new.cert_file)
    assert same_certificate(handshake(context, new), leaf(new))


def handshake(server: ssl.SSLContext, ca: Authority) -> str:
    """The certificate `server` presents in a handshake over memory (PEM)."""
    client = trusting(ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    back_in, back_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    caller = client.wrap_bio(incoming, outgoing, server_hostname="localhost")
    answerer = server.wrap_bio(back_in, back_out, server_side=True)
    for _ in range(10):
        for side in (caller, answerer):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        back_in.write(outgoing.read())
        incoming.write(back_out.read())
    der = caller.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der)


async def test_every_worker_serves_tls_and_reloads_its_certificate(tmp_path: Path) -> None:
    old, new = authority(tmp_path / "old", "old"), authority(tmp_path / "new", "new")
    async with tls_bridge(tmp_path, old, {"BRIDGE_WORKERS": "2"}) as bridge:
        await bridge.wait_for("config.applied", 2)
        (tmp_path / "server.pem").write_bytes(new.cert_file.read_bytes())
        (tmp_path / "server.key").write_bytes(new.key_file.read_bytes())
        bridge.process.send_signal(signal.SIGHUP)
        reloaded = await bridge.wait_for("tls.reloaded", 2)
        assert {line["worker"] for line in reloaded} == {0, 1}
        for _ in range(6):  # new connections, over both workers: all the new certificate
            shown = await asyncio.to_thread(presented, bridge.url)
            assert same_certificate(shown, leaf(new))


def test_serve_tls_gives_uvicorn_the_context_the_reloader_reloads(tmp_path: Path) -> None:
    """In process: with TLS, uvicorn's config serves with our context, and the app's
    reloader reloads it with every config applied; without, nothing changes."""
    import uvicorn

    from proxy.config.settings import Settings
    from proxy.edge.app import create_app
    from proxy.edge.tls import serve_tls

    ca = authority(tmp_path / "ca")
    settings = Settings(tls_cert_file=str(ca.cert_file), tls_key_file=str(ca.key_file))
    app = create_app(settings, reload=lambda: settings)
    config = uvicorn.Config(app, log_config=None)
    serve_tls(config, app, settings)
    assert isinstance(config.ssl, ssl.SSLContext) and config.loaded
    (hook,) = app.state.reloader.applied
    with capture_logs() as logs:
        hook(settings)
    assert [line["event"] for line in logs] == ["tls.reloaded"]
    plain = uvicorn.Config(create_app(Settings()), log_config=None)
    serve_tls(plain, None, Settings())
    assert getattr(plain, "ssl", None) is None and not plain.loaded
