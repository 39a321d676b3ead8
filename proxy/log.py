"""structlog, configured once by the CLI: JSON lines when not on a terminal.

Configured for speed: loggers cached on first use, level filtering compiled in,
orjson to render, no stdlib logging in the path."""

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog


def _orjson(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def configure_logging(fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        processors += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson),
        ]
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
