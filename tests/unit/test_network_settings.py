"""The network settings and the egress decisions, without a socket: which proxy a call
goes through (upstream_proxy over HTTPS_PROXY/HTTP_PROXY by scheme, NO_PROXY as curl and
httpx read it), its credentials as a header and never in what is shown, whom TLS trusts,
each failure's message, what each bad value says, workers' `auto`, what check-config and
--help say, and when the OTEL_* variables turn tracing on."""

import argparse
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from multidict import CIMultiDict, CIMultiDictProxy
from structlog.testing import capture_logs
from yarl import URL

from proxy.config.network import check_network, standard_environ
from proxy.config.settings import ConfigError, Settings, apply, check_ports, from_environ
from proxy.errors import UpstreamUnreachable
from proxy.network_cli import FLAGS, add_options, check_lines
from proxy.obs.tracing import configured, start_tracing
from proxy.upstream.egress import _bypassed, egress_error, proxy_for, shown, ssl_context
from proxy.worker_start import WholeWrites

SECRET = "pa:ss@w0rd"  # needs quoting in a URL
QUOTED = "pa%3Ass%40w0rd"


def settings(**environ: str) -> Settings:
    return from_environ(Settings(), environ)


def test_the_standard_variables_are_found_in_either_case_lower_first() -> None:
    found = dict(standard_environ({"HTTPS_PROXY": "http://u:1", "https_proxy": "http://l:1"}))
    assert found == {"https_proxy": "http://l:1"}
    found = dict(standard_environ({"NO_PROXY": "a", "SSL_CERT_FILE": "/f", "OTHER": "x"}))
    assert found == {"no_proxy": "a", "ssl_cert_file": "/f"}
    assert standard_environ({"HTTP_PROXY": ""}) == ()


def test_the_proxy_follows_the_upstreams_scheme() -> None:
    s = settings(HTTPS_PROXY="http://secure:3128", HTTP_PROXY="plain:8080")
    https = proxy_for("https://api.anthropic.com", s)
    plain = proxy_for("http://internal:8080", s)
    assert https is not None and https.url == https.address == "http://secure:3128"
    assert plain is not None and plain.url == "http://plain:8080"  # no scheme: http://
    assert proxy_for("https://api.anthropic.com", settings()) is None


def test_upstream_proxy_wins_and_no_proxy_does_not_apply_to_it() -> None:
    s = from_environ(
        Settings(upstream_proxy="http://chosen:1"), {"HTTPS_PROXY": "http://env:2", "NO_PROXY": "*"}
    )
    chosen = proxy_for("https://api.anthropic.com", s)
    assert chosen is not None and chosen.url == "http://chosen:1"


def test_credentials_become_a_header_and_are_never_shown() -> None:
    s = settings(HTTPS_PROXY=f"http://bob:{QUOTED}@proxy.corp:3128")
    found = proxy_for("https://api.anthropic.com", s)
    assert found is not None and found.url == "http://proxy.corp:3128"
    address = URL(found.address)  # what aiohttp gets: it sends them as Proxy-Authorization
    assert (address.user, address.password, address.port) == ("bob", SECRET, 3128)
    assert shown("https://api.anthropic.com", s) == {
        "upstream_proxy": "http://proxy.corp:3128",
        "upstream_trust": None,
        "upstream_client_cert": None,
    }
    six = proxy_for("https://x", settings(HTTPS_PROXY="http://[::1]:3128"))
    assert six is not None and six.url == "http://[::1]:3128"


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypassed"),
    [
        ("api.anthropic.com", "anthropic.com", True),
        ("api.anthropic.com", ".anthropic.com", True),
        ("api.anthropic.com", "*.anthropic.com", True),
        ("anthropic.com", ".anthropic.com", True),
        ("notanthropic.com", "anthropic.com", False),
        ("api.anthropic.com", "example.com, api.anthropic.com:443", True),
        ("api.anthropic.com", "*", True),
        ("127.0.0.1", "localhost,127.0.0.1", True),
        ("::1", "[::1]:8080", True),
        ("API.Anthropic.COM", "anthropic.com", True),
        ("api.anthropic.com", "", False),
        ("api.anthropic.com", " , ", False),
    ],
)
def test_no_proxy_as_curl_reads_it(host: str, no_proxy: str, bypassed: bool) -> None:
    assert _bypassed(host, no_proxy) is bypassed


def test_trust_says_where_the_cas_come_from() -> None:
    assert shown("https://x", settings(SSL_CERT_DIR="/d"))["upstream_trust"] == "SSL_CERT_DIR"
    both = settings(SSL_CERT_DIR="/d", SSL_CERT_FILE="/f")
    assert shown("https://x", both)["upstream_trust"] == "SSL_CERT_FILE"


def test_egress_failures_are_named_and_others_left_alone() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, True, True, None, None, None)
    refused = aiohttp.ClientProxyConnectionError(key, OSError(111, "refused"))
    named = egress_error(refused)
    assert isinstance(named, UpstreamUnreachable)
    assert str(named) == "upstream proxy unreachable: could not connect"
    assert egress_error(aiohttp.ServerDisconnectedError()) is None


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("upstream_proxy", "socks5://u:p@h:1", "expected an http:// proxy URL"),
        ("upstream_proxy", "http://h:99999", "expected an http:// proxy URL"),
        ("upstream_proxy", "http://h:1/path", "expected an http:// proxy URL"),
        ("upstream_ca_file", "/nonexistent", "expected the path of a PEM file of CA"),
        ("upstream_client_cert", "/nonexistent", "expected the path of a readable file"),
        ("tls_cert_file", "/", "expected the path of a readable file"),
        ("workers", "0", "expected a whole number from 1 to 256, or auto"),
        ("workers", "many", "expected a whole number from 1 to 256, or auto"),
        ("workers", True, "expected a whole number from 1 to 256, or auto"),
    ],
)
def test_each_bad_value_says_what_was_expected(key: str, value: object, error: str) -> None:
    with pytest.raises(ConfigError, match=error) as caught:
        apply(Settings(), {key: value}, str)
    if key == "upstream_proxy":
        assert "u:p" not in str(caught.value)  # it may hold a password: never shown


def test_workers_auto_is_the_cpus_this_process_may_use() -> None:
    assert apply(Settings(), {"workers": "auto"}, str).workers == len(os.sched_getaffinity(0))
    assert apply(Settings(), {"workers": 3}, str).workers == 3
    assert apply(Settings(), {"upstream_proxy": ""}, str).upstream_proxy == ""


def test_a_certificate_needs_its_key() -> None:
    assert check_network(Settings()) is None
    problem = check_network(Settings(tls_key_file="/k"))
    assert problem == ("tls_cert_file: required with tls_key_file", "tls_key_file")


@pytest.mark.parametrize("value", ["socks5://bob:secret@proxy:1080", "http://proxy:99999"])
def test_a_proxy_variable_the_bridge_cannot_use_stops_it_at_start(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_ports(settings(HTTPS_PROXY=value))
    assert str(caught.value).startswith("HTTPS_PROXY: expected an http:// proxy URL")
    assert "secret" not in str(caught.value) and "99999" not in str(caught.value)
    check_ports(settings(HTTPS_PROXY="proxy.corp:3128", HTTP_PROXY="http://p:1"))  # good
    chosen = from_environ(Settings(upstream_proxy="http://p:1"), {"HTTPS_PROXY": value})
    check_ports(chosen)  # not read: upstream_proxy wins


def test_tracing_is_on_only_when_otel_variables_ask() -> None:
    assert not configured({})
    assert not configured({"OTEL_SERVICE_NAME": "x"})
    assert configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert configured({"OTEL_TRACES_EXPORTER": "console"})
    assert not configured({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert not configured({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"})


def test_check_config_and_help_say_the_network_settings() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser)
    flags = {action.dest for action in parser._actions}
    assert set(FLAGS) <= flags and "upstream_proxy" not in flags  # no password in argv
    assert parser.epilog is not None and "HTTPS_PROXY" in parser.epilog
    proxied = Settings(upstream_proxy=f"http://bob:{QUOTED}@proxy:3128", workers=3)
    assert check_lines(proxied) == [
        "upstream egress: http://proxy:3128; CAs from certifi's bundle",
        "listening: plain HTTP, 3 worker processes",
    ]
    client = Settings(upstream_client_cert="/c.pem", upstream_client_key="/c.key")
    assert check_lines(client)[0].endswith("certifi's bundle, client certificate /c.pem")
    assert check_lines(Settings())[1] == "listening: plain HTTP, 1 worker process"


def test_the_tls_context_trusts_what_the_settings_and_variables_say(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    named = trustme.CA().issue_cert("bridge.client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    named.cert_chain_pems[0].write_to_path(str(cert))
    named.private_key_pem.write_to_path(str(key))
    subjects = [
        ssl_context(Settings(upstream_ca_file=str(ca_file))),
        ssl_context(settings(SSL_CERT_FILE=str(ca_file))),
        ssl_context(settings(SSL_CERT_DIR=str(tmp_path))),  # hashed names only: none here
        ssl_context(Settings(upstream_client_cert=str(cert), upstream_client_key=str(key))),
    ]
    assert [len(context.get_ca_certs()) for context in subjects[:3]] == [1, 1, 0]
    assert len(subjects[3].get_ca_certs()) > 100  # certifi's bundle
    assert all(context.verify_mode == ssl.CERT_REQUIRED for context in subjects)
    assert all(context.check_hostname for context in subjects)


def test_each_tls_and_proxy_failure_is_a_502_that_names_it() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, True, True, None, None, None)
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate"
    info = aiohttp.RequestInfo(URL("http://proxy:1"), "CONNECT", CIMultiDictProxy(CIMultiDict()))
    failures: dict[aiohttp.ClientError, str] = {
        aiohttp.ClientConnectorCertificateError(key, verify): (
            "upstream TLS certificate not trusted: self-signed certificate"
        ),
        aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "alert")): (
            "upstream TLS handshake failed"
        ),
        aiohttp.ClientHttpProxyError(info, (), status=407): (
            "upstream proxy refused the request: 407"
        ),
    }
    for failure, message in failures.items():
        named = egress_error(failure)
        assert isinstance(named, UpstreamUnreachable) and named.status == 502
        assert str(named) == message


def test_tracing_starts_as_the_variables_say() -> None:
    with capture_logs() as logs:
        console = start_tracing({"OTEL_TRACES_EXPORTER": "console"})
        otlp = start_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
        unknown = start_tracing({"OTEL_TRACES_EXPORTER": "zipkin"})
        off = start_tracing({})
    assert console is not None and otlp is not None and unknown is off is None
    assert [line["event"] for line in logs] == [
        "tracing.on",
        "tracing.on",
        "tracing.unknown_exporter",
    ]
    for tracing in (console, otlp):
        tracing.shutdown()  # nothing was traced: nothing is sent


def test_a_workers_lines_leave_in_one_write_each_flush(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with path.open("w") as target:
        stream = WholeWrites(target)
        stream.write('{"a":1}')
        stream.write("\n")
        assert path.read_text() == ""  # nothing until the flush
        stream.flush()
        assert path.read_text() == '{"a":1}\n'
        assert stream.writable() and not stream.isatty()
