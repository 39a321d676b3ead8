"""structlog, configured once by the CLI: JSON lines when not on a terminal.

Configured for speed: loggers cached on first use, level filtering compiled in,
orjson to render, no stdlib logging in the path of our own lines. What other code
logs through the standard `logging` module (uvicorn's own messages, asyncio's,
Python's warnings) is rendered by the same processors into the same stream, so with
JSON every line the process writes is JSON."""

import asyncio
import logging
import sys
import threading
import time
from typing import Any, TextIO

import orjson
import structlog


def _orjson(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def as_json(fmt: str, stream: TextIO) -> bool:
    """Whether `fmt` (auto, json or console) means JSON lines on `stream`."""
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def _processors(json_lines: bool) -> list[structlog.typing.Processor]:
    """What turns an event into its line, after its level and time are added."""
    if json_lines:
        return [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson),
        ]
    return [structlog.dev.ConsoleRenderer()]


class _Stamp:
    """`timestamp` as structlog's TimeStamper(fmt="iso", utc=True) writes it (what
    datetime.isoformat gives, `Z` for UTC), at a fraction of its cost: the date and time
    of day are formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second, self._prefix = -1, ""

    def __call__(self, _: Any, __: str, event: structlog.typing.EventDict) -> Any:
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{micro:06d}Z" if micro else f"{self._prefix}Z"
        return event


class _Lines:
    """structlog's PrintLogger, but inside a running event loop the lines of one turn of
    the loop are flushed together, at the start of the next turn (one write, not one a
    line); elsewhere (another thread, no loop) each line is flushed as it is written."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending = False

    def msg(self, message: str) -> None:
        with self._lock:
            print(message, file=self._stream)
            if self._pending:
                return
            try:
                asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no loop in this thread
                self._stream.flush()
                return
            self._pending = True

    def _flush(self) -> None:
        with self._lock:
            self._pending = False
            self._stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_STAMP: list[structlog.typing.Processor] = [structlog.processors.add_log_level, _Stamp()]


def configure_logging(fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    render = _processors(as_json(fmt, stream))
    lines = _Lines(stream)  # one for all loggers: one lock, one flush a turn
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_STAMP, *render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_: lines,
        cache_logger_on_first_use=True,
    )
    # The standard library's records (uvicorn's, asyncio's, warnings) in the same
    # format and stream: a record's message becomes the event, its logger is named.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_STAMP],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    logging.root.handlers = [handler]
    logging.captureWarnings(True)


def start_failure(message: str, fmt: str, stream: TextIO | None = None) -> None:
    """The one line a start-up error of `serve` writes (on stderr): a JSON event
    `bridge.start_failed` when the log is JSON, else `complete-bridge: error: ...`.
    Needs no configure_logging: it may come before the settings are known."""
    stream = stream or sys.stderr
    if not as_json(fmt, sys.stdout):
        print(f"complete-bridge: error: {message}", file=stream)
        return
    logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[*_STAMP, *_processors(True)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    logger.error("bridge.start_failed", error=message)
