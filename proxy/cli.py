"""The command line: parse options, call plain functions (proxy/commands.py,
proxy/serve.py). Mistakes exit 2 with one line."""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from proxy import __version__
from proxy.commands import UsageError, check_config, report, translate
from proxy.config.file import from_file
from proxy.config.settings import ConfigError, Settings, apply, check_ports, from_environ
from proxy.errors import InvalidRequest
from proxy.network_cli import FLAGS as NETWORK_FLAGS
from proxy.network_cli import add_options as add_network_options
from proxy.rollout.routes import fingerprint
from proxy.serve import serve
from proxy.workers import supervise

PROG = "complete-bridge"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve Anthropic's legacy Text Completions API (POST /v1/complete) "
        "on the Messages API. Point a legacy app's base URL at it.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the bridge",
        description="Run the bridge. Every option is also an environment variable "
        "(shown in brackets) and a key of the TOML config file; flags win over the "
        "environment, which wins over the file.",
    )
    serve.add_argument(
        "--upstream-url",
        metavar="URL",
        help="the Messages API base URL, or 'demo:' for a built-in stand-in that needs "
        "no key and no network [BRIDGE_UPSTREAM_URL] (default: https://api.anthropic.com)",
    )
    serve.add_argument("--host", help="address to listen on [BRIDGE_HOST] (default: 127.0.0.1)")
    serve.add_argument("--port", help="port to listen on [BRIDGE_PORT] (default: 8080)")
    serve.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="also listen on PORT (on the same host), serving only GET /metrics, with no "
        "key; /metrics then leaves the serving port [BRIDGE_METRICS_PORT] (default: 0, "
        "off: /metrics is on the serving port and needs a key when client_keys is set)",
    )
    serve.add_argument(
        "--max-inflight-bytes",
        metavar="BYTES",
        help="request bodies of /v1/complete held in memory at once, at most; a call "
        "that would go over is answered 529 overloaded_error with retry-after, before "
        "its body is read; at least max_body_bytes [BRIDGE_MAX_INFLIGHT_BYTES] "
        "(default: 33554432, 32 MiB)",
    )
    serve.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        help="a request head not complete this long after the connection opened (or, "
        "kept alive, after its first byte) is answered 408 and the connection closed "
        "[BRIDGE_HEADER_TIMEOUT] (default: 30)",
    )
    serve.add_argument(
        "--body-timeout",
        metavar="SECONDS",
        help="a request body that sends no byte for this long is answered 408 and the "
        "connection closed [BRIDGE_BODY_TIMEOUT] (default: 60)",
    )
    serve.add_argument(
        "--max-client-connections",
        metavar="N",
        help="client connections open at once; past it a new one is answered 503 "
        "overloaded_error with retry-after [BRIDGE_MAX_CLIENT_CONNECTIONS] (default: 10000)",
    )
    add_network_options(serve)  # TLS, egress, workers: proxy/network_cli.py
    _config_option(serve)

    translate = commands.add_parser(
        "translate",
        help="show the Messages request a legacy body becomes",
        description="Read a legacy /v1/complete request body (JSON) on stdin and print "
        "the Messages request it becomes, with what the bridge adapted. Nothing is sent.",
    )
    _config_option(translate)

    check = commands.add_parser(
        "check-config",
        help="validate a config file and show the routes it would apply",
        description="Read FILE (with the BRIDGE_* environment over it, as serve does), "
        "check every setting, route and secret reference, and print the routes in the "
        "order they are tried. A mistake exits 2 with FILE:LINE and what to fix. Run it "
        "before a reload: a running bridge refuses a config that fails here.",
    )
    check.add_argument("config", metavar="FILE", help="TOML config file")

    commands.add_parser(
        "fingerprint",
        help="print the fingerprint of the API key on stdin (for routes' match.key)",
        description="Read an API key on stdin and print its fingerprint: the name the "
        "bridge's log, metrics and routes give the key (12 hex digits of its SHA-256).",
    )
    _report_parser(commands)
    return parser


def _report_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    report = commands.add_parser(
        "report",
        help="summarise the bridge's JSON log: who still calls /v1/complete, and how",
        description="Read the bridge's JSON log lines (its stdout with log_format json) and "
        "print the migration picture: legacy requests per caller (API key fingerprint) and "
        "model, error rates and p50/p95 latency per route and arm, which adaptations fire "
        "most (the prompts to fix when a caller migrates), shadow agreement, tokens, and "
        "requests per day. Lines that are not JSON log events are skipped and counted.",
        epilog="examples:  complete-bridge serve | tee bridge.log  ...  then "
        "complete-bridge report bridge.log;  "
        "kubectl logs deploy/complete-bridge | complete-bridge report --json;  "
        "complete-bridge report *.log --since 2025-06-01 --html report.html",
    )
    report.add_argument(
        "files", nargs="*", metavar="FILE", help="log files; '-' or none reads stdin"
    )
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the report as JSON")
    output.add_argument(
        "--html",
        metavar="OUT",
        help="write the report as one self-contained HTML page with charts (no scripts, "
        "no network) to OUT and print its path",
    )
    report.add_argument(
        "--since", metavar="TIME", help="only events at or after TIME (ISO 8601; UTC if no zone)"
    )
    report.add_argument(
        "--until", metavar="TIME", help="only events before TIME (ISO 8601; UTC if no zone)"
    )
    report.add_argument(
        "--config",
        metavar="FILE",
        help="the bridge's TOML config file: its [report] table sets the verdicts' thresholds "
        "and [report.prices.MODEL] the prices (docs/migration.md)",
    )
    for flag, what in (("min-requests", "per canary arm"), ("min-comparisons", "in shadow")):
        report.add_argument(
            f"--{flag}",
            type=int,
            metavar="N",
            help=f"calls {what} before a verdict (default 200, or the config's [report])",
        )


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (see docs/configuration.md) [BRIDGE_CONFIG]",
    )


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    settings = Settings()
    config = args.config or environ.get("BRIDGE_CONFIG")
    if config:
        settings = from_file(settings, Path(config))
    settings = from_environ(settings, environ)

    flags = {
        key: getattr(args, key)
        for key in (
            "upstream_url",
            "host",
            "port",
            "metrics_port",
            "max_inflight_bytes",
            "header_timeout",
            "body_timeout",
            "max_client_connections",
            *NETWORK_FLAGS,
        )
        if getattr(args, key, None) is not None
    }
    return check_ports(apply(settings, flags, lambda key: "--" + key.replace("_", "-")))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    log_format = environ.get("BRIDGE_LOG_FORMAT", "auto")  # until the settings say
    try:
        if args.command == "report":
            print(report(args))
            return 0
        if args.command == "check-config":
            print(check_config(Path(args.config), environ))
            return 0
        if args.command == "fingerprint":
            key = sys.stdin.read().strip()
            if not key:
                raise UsageError(
                    f'no API key on stdin; pipe one in: printf %s "$KEY" | {PROG} fingerprint'
                )
            print(fingerprint(key.encode()))
            return 0
        settings = load_settings(args, environ)
        log_format = settings.log_format
        if args.command == "serve":
            path = args.config or environ.get("BRIDGE_CONFIG")
            (supervise if settings.workers > 1 else serve)(  # workers: proxy/workers.py
                settings,
                environ,
                reload=lambda: load_settings(args, environ),
                config_path=Path(path) if path else None,
            )
        else:
            print(translate(settings, sys.stdin.read()))
    except (ConfigError, InvalidRequest, UsageError) as exc:
        if args.command == "serve":  # one line in the log's format
            from proxy.obs.log import start_failure

            start_failure(str(exc), log_format)
        else:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0
