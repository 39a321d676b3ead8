"""The command line: parse options, call plain functions. Mistakes exit 2 with one line."""

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from proxy import __version__
from proxy.config import ConfigError, Settings, apply, from_environ, from_file
from proxy.errors import InvalidRequest
from proxy.translate.request import translate_request

PROG = "complete-bridge"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
    _config_option(serve)

    translate = commands.add_parser(
        "translate",
        help="show the Messages request a legacy body becomes",
        description="Read a legacy /v1/complete request body (JSON) on stdin and print "
        "the Messages request it becomes, with what the bridge adapted. Nothing is sent.",
    )
    _config_option(translate)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file (see README) [BRIDGE_CONFIG]"
    )


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    settings = Settings()
    config = args.config or environ.get("BRIDGE_CONFIG")
    if config:
        settings = from_file(settings, Path(config))
    settings = from_environ(settings, environ)

    flags = {
        key: getattr(args, key)
        for key in ("upstream_url", "host", "port")
        if getattr(args, key, None) is not None
    }
    return apply(settings, flags, lambda key: "--" + key.replace("_", "-"))


def serve(settings: Settings, environ: Mapping[str, str]) -> None:
    import structlog
    import uvicorn

    from proxy.app import create_app
    from proxy.limits import BoundedHttpToolsProtocol
    from proxy.log import configure_logging

    app = create_app(settings, environ=environ)  # a bad secret reference stops us here
    configure_logging(settings.log_format)
    log = structlog.get_logger(PROG)

    class DrainingServer(uvicorn.Server):
        """On SIGTERM/SIGINT: fail readiness, stop accepting, let requests in flight
        finish for up to drain_timeout seconds, then stop."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not app.state.readiness.draining:
                app.state.readiness.draining = True
                log.info(
                    "bridge.draining",
                    signal=signal.Signals(sig).name,
                    deadline_s=settings.drain_timeout,
                )
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=BoundedHttpToolsProtocol,  # httptools with a bound on request heads
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the bridge never reads the client address
        log_level="warning",
        timeout_graceful_shutdown=settings.drain_timeout,
    )
    log.info(
        "bridge.starting", upstream=settings.upstream_url, host=settings.host, port=settings.port
    )
    if settings.upstream_key and not settings.client_keys and settings.host not in LOOPBACK:
        log.warning(
            "bridge.open_upstream_key",
            hint="the bridge holds the upstream key and admits anyone who can reach "
            f"{settings.host}; set client_keys, or listen on 127.0.0.1",
        )
    DrainingServer(config).run()  # re-raises the signal that stopped it, once drained


def translate(settings: Settings, text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"stdin is not valid JSON: {exc}") from None
    translation = translate_request(body, settings.models)
    return json.dumps(
        {
            "request": translation.body,
            "adaptations": list(translation.adaptations),
            "bridge_enforced_stop_sequences": list(translation.local_stops),
        },
        indent=2,
        ensure_ascii=False,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        settings = load_settings(args, environ)
        if args.command == "serve":
            serve(settings, environ)
        else:
            print(translate(settings, sys.stdin.read()))
    except (ConfigError, InvalidRequest) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0
