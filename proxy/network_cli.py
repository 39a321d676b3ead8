"""The network settings (proxy/config/network.py) on the command line: `serve`'s flags
and their help, and the lines `check-config` prints about them. `upstream_proxy` has no
flag: a password on a command line is seen by every user of the host (`ps`)."""

import argparse

from proxy.config.settings import Settings

FLAGS = (
    "upstream_ca_file",
    "upstream_client_cert",
    "upstream_client_key",
    "tls_cert_file",
    "tls_key_file",
    "workers",
)

EPILOG = (
    "upstream egress: upstream_proxy [BRIDGE_UPSTREAM_PROXY] (http://[user:password@]host:port; "
    "no flag, keep a password off the command line), else HTTPS_PROXY / HTTP_PROXY unless "
    "NO_PROXY names the upstream; CAs from --upstream-ca-file, else SSL_CERT_FILE / "
    "SSL_CERT_DIR, else certifi's. See docs/configuration.md."
)


def add_options(serve: argparse.ArgumentParser) -> None:
    serve.epilog = EPILOG
    serve.add_argument(
        "--upstream-ca-file",
        metavar="FILE",
        help="PEM file of the CAs the upstream's certificate must chain to (a private or "
        "TLS-inspecting CA); wins over SSL_CERT_FILE and SSL_CERT_DIR "
        "[BRIDGE_UPSTREAM_CA_FILE] (default: certifi's bundle)",
    )
    serve.add_argument(
        "--upstream-client-cert",
        metavar="FILE",
        help="PEM client certificate shown to an upstream that demands one (mTLS); needs "
        "--upstream-client-key [BRIDGE_UPSTREAM_CLIENT_CERT] (default: none)",
    )
    serve.add_argument(
        "--upstream-client-key",
        metavar="FILE",
        help="PEM private key of --upstream-client-cert [BRIDGE_UPSTREAM_CLIENT_KEY]",
    )
    serve.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="serve TLS with this PEM certificate (and chain); read again on every reload "
        "(SIGHUP); needs --tls-key-file [BRIDGE_TLS_CERT_FILE] (default: none, plain HTTP)",
    )
    serve.add_argument(
        "--tls-key-file",
        metavar="FILE",
        help="PEM private key of --tls-cert-file [BRIDGE_TLS_KEY_FILE]",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        help="worker processes serving the port(s), or 'auto' for one per CPU this process "
        "may use; metrics are summed across them [BRIDGE_WORKERS] (default: 1)",
    )


def check_lines(settings: Settings) -> list[str]:
    """What check-config says of the network settings (no user, no password)."""
    from proxy.upstream.egress import shown

    egress = shown(settings.upstream_url, settings)
    through = egress["upstream_proxy"] or "direct (no proxy)"
    trust = egress["upstream_trust"] or "certifi's bundle"
    client = f", client certificate {egress['upstream_client_cert']}"
    listening = f"TLS with {settings.tls_cert_file}" if settings.tls_cert_file else "plain HTTP"
    return [
        f"upstream egress: {through}; CAs from {trust}"
        + (client if egress["upstream_client_cert"] else ""),
        f"listening: {listening}, {settings.workers} worker process"
        + ("es" if settings.workers > 1 else ""),
    ]
