"""The settings of the bridge's place on a network: how it reaches the upstream (a forward
proxy, a private CA, a client certificate), TLS on its own port, and its worker processes.
Settings (proxy/config/settings.py) inherits them; their parsers join its table. The
standard variables the SDKs honoured (HTTPS_PROXY, SSL_CERT_FILE, ...) are captured here
from the injected environment: proxy/upstream/egress.py decides with them.
"""

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The standard variables, in the case curl and httpx read first (lower), then upper.
STANDARD_VARIABLES = ("https_proxy", "http_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir")
MAX_WORKERS = 256
# Fields of Settings that are no setting (tables, or found in the environment).
NOT_SETTINGS = ("report", "standard_environ")


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    upstream_proxy: str = ""  # wins over HTTPS_PROXY/HTTP_PROXY; "" : the environment's
    upstream_ca_file: str = ""  # wins over SSL_CERT_FILE/SSL_CERT_DIR
    upstream_client_cert: str = ""
    upstream_client_key: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    workers: int = 1
    # The standard variables as the process found them (lower-case names), for egress.
    standard_environ: tuple[tuple[str, str], ...] = ()


def standard_environ(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The standard proxy and CA variables of `environ` that are set, lower-case named."""
    found = []
    for name in STANDARD_VARIABLES:
        value = environ.get(name) or environ.get(name.upper())
        if value:
            found.append((name, value))
    return tuple(found)


def _proxy_url(value: Any) -> str:
    """an http:// proxy URL (http://[user:password@]host:port), or "" for none"""
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError
    parts.port  # noqa: B018 (raises ValueError on a bad port)
    return text.rstrip("/")


def _file(value: Any) -> str:
    """the path of a readable file, or "" for none"""
    text = str(value).strip()
    if text and not (Path(text).is_file() and os.access(text, os.R_OK)):
        raise ValueError
    return text


def _ca_file(value: Any) -> str:
    """the path of a PEM file of CA certificates, or "" for none"""
    text = _file(value)
    if text:
        try:
            ssl.create_default_context(cafile=text)
        except ssl.SSLError:
            raise ValueError from None
    return text


def _workers(value: Any) -> int:
    """a whole number from 1 to 256, or auto (the CPUs this process may use)"""
    if isinstance(value, bool):
        raise ValueError
    if str(value).strip() == "auto":
        return min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    number = int(value)
    if not 1 <= number <= MAX_WORKERS:
        raise ValueError
    return number


PARSERS: dict[str, Callable[[Any], Any]] = {
    "upstream_proxy": _proxy_url,
    "upstream_ca_file": _ca_file,
    "upstream_client_cert": _file,
    "upstream_client_key": _file,
    "tls_cert_file": _file,
    "tls_key_file": _file,
    "workers": _workers,
}


def check_network(settings: NetworkSettings) -> tuple[str, str] | None:
    """What is wrong with the proxy variables (HTTPS_PROXY, HTTP_PROXY: an http:// proxy,
    or a host:port, as for upstream_proxy) or the certificate pairs (each needs the
    other, and the key must be the certificate's), naming them, and the key at fault;
    None if nothing."""
    for name, value in settings.standard_environ:
        if name.endswith("_proxy") and name != "no_proxy" and not settings.upstream_proxy:
            try:
                _proxy_url(value if "://" in value else "http://" + value)
            except ValueError:
                shown = "something else (not shown: it may hold a password)"
                return f"{name.upper()}: expected {_proxy_url.__doc__}, got {shown}", name
    pairs = (
        ("upstream_client_cert", "upstream_client_key"),
        ("tls_cert_file", "tls_key_file"),
    )
    for cert_key, key_key in pairs:
        cert, key = getattr(settings, cert_key), getattr(settings, key_key)
        if bool(cert) != bool(key):
            given, missing = (cert_key, key_key) if cert else (key_key, cert_key)
            return f"{missing}: required with {given}", given
        if cert:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                problem = f"not a PEM certificate and its key ({exc.reason})"
                return f"{cert_key}, {key_key}: {problem}", key_key
    return None
