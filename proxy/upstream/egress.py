"""How the network transport leaves the host, as the official SDKs (httpx) did it: through
the forward proxy of `upstream_proxy`, else of HTTPS_PROXY / HTTP_PROXY (by the upstream's
scheme) unless NO_PROXY names the upstream's host; trusting the CAs of
`upstream_ca_file`, else SSL_CERT_FILE / SSL_CERT_DIR, else certifi's bundle; showing the
client certificate of `upstream_client_cert` when set. A proxy's user and password stay
in the address aiohttp is given (it sends them as Proxy-Authorization, on the CONNECT of
an https:// upstream, on each request of an http:// one), never in a log line.
"""

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import certifi

from proxy.config.network import NetworkSettings
from proxy.errors import BridgeError, UpstreamUnreachable


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str  # without user or password: what may be shown
    address: str  # with them, for the transport only


def proxy_for(upstream_url: str, settings: NetworkSettings) -> Proxy | None:
    """The forward proxy calls to `upstream_url` go through; None: straight there."""
    environ = dict(settings.standard_environ)
    if settings.upstream_proxy:
        return _proxy(settings.upstream_proxy)
    parts = urlsplit(upstream_url)
    found = environ.get("https_proxy" if parts.scheme == "https" else "http_proxy")
    if not found or _bypassed(parts.hostname or "", environ.get("no_proxy", "")):
        return None
    return _proxy(found if "://" in found else "http://" + found)


def _proxy(url: str) -> Proxy:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    bare = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    return Proxy(bare, url)


def proxy_refused(status: int) -> BridgeError:
    """The proxy's own refusal (407: its credentials), never relayed as the upstream's."""
    return UpstreamUnreachable(f"upstream proxy refused the request: {status}")


def _bypassed(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl and httpx read it: `*`, or hosts and domains (a leading dot or
    none: the name and its subdomains), comma-separated; a `:port` on an entry is ignored."""
    host = host.lower().strip("[]")
    for entry in no_proxy.lower().split(","):
        entry = entry.strip()
        if entry.startswith("["):
            entry = entry[1:].partition("]")[0]
        elif entry.count(":") == 1:
            entry = entry.partition(":")[0]
        entry = entry.lstrip(".").removeprefix("*.")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def ssl_context(settings: NetworkSettings) -> ssl.SSLContext:
    """The TLS context upstream connections verify with (and show a certificate from)."""
    environ = dict(settings.standard_environ)
    if settings.upstream_ca_file:
        context = ssl.create_default_context(cafile=settings.upstream_ca_file)
    elif "ssl_cert_file" in environ:
        context = ssl.create_default_context(cafile=environ["ssl_cert_file"])
    elif "ssl_cert_dir" in environ:
        context = ssl.create_default_context(capath=environ["ssl_cert_dir"])
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    if settings.upstream_client_cert:
        context.load_cert_chain(settings.upstream_client_cert, settings.upstream_client_key)
    return context


def shown(upstream_url: str, settings: NetworkSettings) -> dict[str, str | None]:
    """Where calls go through and whom they trust, for the log: no user, no password."""
    environ = dict(settings.standard_environ)
    proxy = proxy_for(upstream_url, settings)
    trust = (
        "upstream_ca_file"
        if settings.upstream_ca_file
        else "SSL_CERT_FILE"
        if "ssl_cert_file" in environ
        else "SSL_CERT_DIR"
        if "ssl_cert_dir" in environ
        else None
    )
    return {
        "upstream_proxy": proxy.url if proxy else None,
        "upstream_trust": trust,
        "upstream_client_cert": settings.upstream_client_cert or None,
    }


def egress_error(exc: aiohttp.ClientError) -> BridgeError | None:
    """A failure of the proxy or of TLS trust, named; None for any other."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
        return UpstreamUnreachable(f"upstream TLS certificate not trusted: {reason}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return UpstreamUnreachable("upstream TLS handshake failed")
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # its answer to CONNECT
        return proxy_refused(exc.status)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return UpstreamUnreachable("upstream proxy unreachable: could not connect")
    return None
