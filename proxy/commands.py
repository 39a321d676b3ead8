"""The one-shot commands (check-config, translate, report): plain functions returning
what the command line prints; a mistake is a ConfigError, an InvalidRequest or a
UsageError, which the command line shows as one line and exit status 2."""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from proxy.config.file import from_file, locate
from proxy.config.report_table import ReportConfig
from proxy.config.settings import ConfigError, Settings, check_ports, from_environ
from proxy.errors import InvalidRequest
from proxy.network_cli import check_lines
from proxy.translate.request import translate_request


class UsageError(ValueError):
    """A command-line mistake that is not a setting: a file that cannot be read."""


def check_config(path: Path, environ: Mapping[str, str]) -> str:
    """What check-config prints for a config that loads; ConfigError if it does not."""
    from proxy.rollout.runtime import Runtime, UpstreamPool

    settings = from_environ(from_file(Settings(), path), environ)
    try:
        check_ports(settings)
        runtime = Runtime(settings, environ, UpstreamPool(None), generation=1)  # reads secrets
    except ConfigError as exc:
        raise ConfigError(locate(exc, path)) from None
    lines = [
        f"{path}: OK",
        f"upstream: {settings.upstream_url}",
        f"metrics: {_metrics_place(settings)}",
        *check_lines(settings),  # egress, TLS, workers
        f"force_mode (kill switch): {settings.force_mode or 'off: routes decide'}",
        "routes, tried in order (first match wins):",
    ]
    rows = runtime.describe()
    if settings.force_mode:
        rows = [{"name": "(every call)", "match": "", "answer": settings.force_mode}]
    width = max(len(row["name"]) for row in rows)
    for number, row in enumerate(rows, 1):
        match = f"when {row['match']}: " if row["match"] else "otherwise: "
        lines.append(f"  {number}. {row['name']:<{width}}  {match}{row['answer']}")
    return "\n".join(lines)


def _metrics_place(settings: Settings) -> str:
    if settings.metrics_port:
        return f"GET /metrics on port {settings.metrics_port} only, no key"
    key = ", with a client key" if settings.client_keys else ""
    return f"GET /metrics on port {settings.port}{key}"


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


def _log_lines(files: Sequence[str]) -> Iterator[bytes]:
    for name in files or ["-"]:
        if name == "-":
            yield from sys.stdin.buffer
            continue
        try:
            with open(name, "rb") as lines:
                yield from lines
        except OSError as exc:
            raise UsageError(f"cannot read {name} ({exc.strerror or exc})") from None


def _moment(flag: str, text: str | None) -> datetime | None:
    from proxy.report import parse_timestamp

    try:
        return None if text is None else parse_timestamp(text)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 off UTC
        raise UsageError(f"{flag}: expected an ISO 8601 timestamp, got {text!r}") from None


def report(args: argparse.Namespace) -> str:
    """The migration report of the log files in `args`: text, JSON, or an HTML file."""
    from proxy.report import build_report, render_html, render_json, render_text

    since, until = _moment("--since", args.since), _moment("--until", args.until)
    config = from_file(Settings(), Path(args.config)).report if args.config else ReportConfig()
    for key in ("min_requests", "min_comparisons"):
        if (value := getattr(args, key, None)) is not None:
            if value < 1:
                raise UsageError(f"--{key.replace('_', '-')}: expected 1 or more, got {value}")
            config = replace(config, **{key: value})
    result = build_report(_log_lines(args.files), since=since, until=until, config=config)
    if args.json:
        return render_json(result)
    if args.html:
        try:
            Path(args.html).write_text(render_html(result), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.html} ({exc.strerror or exc})") from None
        return str(args.html)
    return render_text(result).rstrip("\n")
