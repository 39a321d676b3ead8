"""Settings: one frozen object, built from injected mappings (only the CLI reads the
environment). Sources in rising precedence: defaults, the TOML file, BRIDGE_* variables,
command-line flags. A bad value fails naming its key and the value. The file is read by
proxy/config/file.py."""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from proxy.config import network
from proxy.config.models import ModelTable
from proxy.config.report_table import ReportConfig
from proxy.config.toml_lines import KeyPath
from proxy.rollout.routes import Route

DEMO_UPSTREAM = "demo:"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it came from. `at` is the
    path in the config file of the key (or table) at fault, when it is one there."""

    def __init__(self, message: str, at: KeyPath = ()) -> None:
        super().__init__(message)
        self.at = at


@dataclass(frozen=True, slots=True)
class Settings(network.NetworkSettings):  # and the network's: proxy/config/network.py
    upstream_url: str = "https://api.anthropic.com"
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_port: int = 0  # 0: /metrics on `port`, behind the key check
    max_body_bytes: int = 32 * 1024 * 1024
    # Request bodies held at once (docs/limits-and-faults.md, Memory).
    max_inflight_bytes: int = 32 * 1024 * 1024
    connect_timeout: float = 10.0
    first_byte_timeout: float = 600.0
    idle_timeout: float = 300.0
    retries: int = 0
    retry_budget: float = 0.1
    retry_max_wait: float = 10.0
    max_connections: int = 1000
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    max_client_connections: int = 10_000
    drain_timeout: int = 30
    echo_model: bool = True
    log_text: bool = False
    log_format: str = "auto"
    client_keys: str = ""
    upstream_key: str = ""
    # Bedrock calls (docs/bedrock.md): AWS access keys whose SigV4 the bridge verifies.
    bedrock_access_keys: str = ""
    # Set: the upstream is Bedrock Runtime in this region, signed with the bridge's AWS
    # credentials (docs/bedrock.md, Where the call goes).
    upstream_aws_region: str = ""
    force_mode: str = ""  # the kill switch: translate or passthrough for every call
    models: ModelTable = field(default_factory=ModelTable)
    routes: tuple[Route, ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)  # the [report] table


def _url(value: Any) -> str:
    """an http:// or https:// URL, or demo:"""
    text = str(value).strip()
    if text == DEMO_UPSTREAM or text.startswith(("http://", "https://")):
        return text.rstrip("/")
    raise ValueError


def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
        if not low <= number <= high:
            raise ValueError
        return number

    parse.__doc__ = f"an integer from {low} to {high}"
    return parse


def _seconds(value: Any) -> float:
    """a number of seconds above 0"""
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise ValueError
    return number


def _fraction(value: Any) -> float:
    """a number from 0 to 1"""
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError
    return number


def _reference(value: Any) -> str:
    """env:NAME or file:PATH (never the key itself), or "" for none"""
    text = str(value).strip()
    kind, colon, where = text.partition(":")
    if text and not (colon and kind in ("env", "file") and where):
        raise ValueError
    return text


def _region(value: Any) -> str:
    """an AWS region name (us-east-1), or "" for none"""
    text = str(value).strip()
    if text and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", text):
        raise ValueError
    return text


def _bool(value: Any) -> bool:
    """true or false"""
    if isinstance(value, bool):
        return value
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    return words[str(value).strip().lower()]


def _log_format(value: Any) -> str:
    """auto, json or console"""
    if value not in ("auto", "json", "console"):
        raise ValueError
    return str(value)


def _force_mode(value: Any) -> str:
    """translate, passthrough, or "" (off: routes decide)"""
    if value not in ("", "translate", "passthrough"):
        raise ValueError
    return str(value)


def _metrics_port(value: Any) -> int:
    """a port from 1 to 65535, or 0 (off: /metrics on the serving port)"""
    return _int(0, 65535)(value)


def _host(value: Any) -> str:
    """a host name or address"""
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip()


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "upstream_url": _url,
    "host": _host,
    "port": _int(1, 65535),
    "metrics_port": _metrics_port,
    "max_body_bytes": _int(1024, 2**40),
    "max_inflight_bytes": _int(1024, 2**40),
    "connect_timeout": _seconds,
    "first_byte_timeout": _seconds,
    "idle_timeout": _seconds,
    "retries": _int(0, 10),
    "retry_budget": _fraction,
    "retry_max_wait": _seconds,
    "max_connections": _int(1, 100_000),
    "header_timeout": _seconds,
    "body_timeout": _seconds,
    "max_client_connections": _int(1, 1_000_000),
    "drain_timeout": _int(1, 3600),
    "echo_model": _bool,
    "log_text": _bool,
    "log_format": _log_format,
    "client_keys": _reference,
    "upstream_key": _reference,
    "bedrock_access_keys": _reference,
    "upstream_aws_region": _region,
    "force_mode": _force_mode,
    **network.PARSERS,
}
KEYS = tuple(_PARSERS)
assert set(KEYS) == {f.name for f in fields(Settings)} - {"models", "routes", *network.NOT_SETTINGS}


def check_value(key: str, raw: Any) -> Any:
    """`raw` parsed as setting `key`; ValueError saying what was expected."""
    parser = _PARSERS[key]
    try:
        return parser(raw)
    except (ValueError, TypeError, KeyError, OverflowError):
        raise ValueError(
            f"expected {parser.__doc__ or 'a valid value'}, got {_shown(key, raw)}"
        ) from None


SECRET_KEYS = frozenset({"client_keys", "upstream_key", "bedrock_access_keys", "upstream_proxy"})


def _shown(key: str, raw: Any) -> str:
    """A bad value as an error message shows it; never what could be a secret."""
    return "something else (not shown: it may be a key)" if key in SECRET_KEYS else repr(raw)


def env_name(key: str) -> str:
    return "BRIDGE_" + key.upper()


def apply(
    settings: Settings,
    values: Mapping[str, Any],
    name: Callable[[str], str],
    in_file: bool = False,
) -> Settings:
    """`settings` with `values` applied; `name(key)` says how the source calls a key, and
    an error from a file (`in_file`) says where the key is."""
    changes = {}
    for key, raw in values.items():
        at = (key,) if in_file else ()
        if key not in _PARSERS:
            raise ConfigError(f"{name(key)}: unknown setting (known: {', '.join(KEYS)})", at)
        parser = _PARSERS[key]
        try:
            changes[key] = parser(raw)
        except (ValueError, TypeError, KeyError, OverflowError):
            expected = parser.__doc__ or "a valid value"
            shown = _shown(key, raw)
            raise ConfigError(f"{name(key)}: expected {expected}, got {shown}", at) from None
    return replace(settings, **changes)


def check_ports(settings: Settings) -> Settings:
    """`settings`, if its listeners can all be bound: metrics_port is not port."""
    if settings.metrics_port == settings.port:
        raise ConfigError(
            f"metrics_port: must differ from port ({settings.port})", at=("metrics_port",)
        )
    if problem := network.check_network(settings):  # proxy variables, certificate pairs
        raise ConfigError(problem[0], at=(problem[1],))
    return settings


def from_environ(settings: Settings, environ: Mapping[str, str]) -> Settings:
    values = {key: environ[env_name(key)] for key in KEYS if env_name(key) in environ}
    found = network.standard_environ(environ)  # HTTPS_PROXY, SSL_CERT_FILE, ...
    return replace(apply(settings, values, env_name), standard_environ=found)
