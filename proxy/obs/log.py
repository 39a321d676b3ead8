"""structlog, configured once by the CLI: JSON lines when not on a terminal.

Configured for speed: loggers cached on first use, level filtering compiled in,
orjson to render, no stdlib logging in the path of our own lines. What other code
logs through the standard `logging` module (uvicorn's own messages, asyncio's,
Python's warnings) is rendered by the same processors into the same stream, so with
JSON every line the process writes is JSON."""

import asyncio
import atexit
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TextIO

import orjson
import structlog

# What every line written in a context carries besides its own fields: a call's id and
# route, a worker's slot. A context variable, so the tasks a call starts (its shadow)
# inherit it; one for all the names, so a call binds and unbinds with one set and reset.
_BOUND: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "complete_bridge_log_bound", default=MappingProxyType({})
)
Bound = contextvars.Token[Mapping[str, Any]]
# How a call's canonical line is written (`_Lines.write_record`): the event's name and
# its fields.
RecordSink = Callable[[str, dict[str, object]], None]


def bind(**values: Any) -> Bound:
    """Put `values` on every line written in this context from now on (and in the tasks
    started from it); `unbind` with the token this returns takes them off again."""
    return _BOUND.set({**_BOUND.get(), **values})


def unbind(token: Bound) -> None:
    _BOUND.reset(token)


def bound() -> Mapping[str, Any]:
    """What is bound in this context."""
    return _BOUND.get()


def merge_bound(_: Any, __: str, event: structlog.typing.EventDict) -> Any:
    """The processor that puts what is bound on a line (a field of the line's own wins)."""
    for name, value in _BOUND.get().items():
        event.setdefault(name, value)
    return event


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
    the loop are written together, at the start of the next turn: one write, not one or
    two a line (print writes the newline apart, and with PYTHONUNBUFFERED each write is
    a system call); elsewhere (another thread, no loop) each line is written at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        # Reentrant, and never held while writing: a signal handler runs in the thread it
        # interrupts, maybe in the middle of `flush` (uvicorn's on SIGTERM, the workers'
        # supervisor's), and it logs too. A plain lock held across the write hung the
        # process there, for good.
        self._lock = threading.RLock()
        self._pending: list[str] = []
        self._writing = False  # a flush is writing: what is logged meanwhile, it writes

    def msg(self, message: str) -> None:
        with self._lock:
            self._pending.append(message)
            if len(self._pending) > 1:
                return  # a flush is due already
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop in this thread: now
            self.flush()

    def write_record(self, event: str, fields: dict[str, object]) -> None:
        """A call's canonical line, as the JSON processors render any line (the same
        fields in the same order), but without going through them: it is the line
        written once per call, and structlog's chain cost about twice the rendering
        itself (bench/README.md)."""
        line: dict[str, object] = {**fields, "event": event}
        for name, value in _BOUND.get().items():
            line.setdefault(name, value)
        line["level"] = "info"
        self.msg(_orjson(_STAMP_TIME(None, "", line)))

    def flush(self) -> None:
        """Write the lines held, if any, until none are left: the lines logged while it
        writes (by a signal handler, or another thread) are written by it too."""
        with self._lock:
            if self._writing:
                return  # this interrupted a flush, which writes what is held
            self._writing = True
        try:
            while True:
                with self._lock:
                    lines, self._pending = self._pending, []
                    if not lines:
                        self._writing = False
                        return
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
        except BaseException:
            self._writing = False
            raise

    def __call__(self, *_: Any) -> "_Lines":
        """The logger factory: every logger writes through this one."""
        return self

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _Records(logging.Handler):
    """The standard library's records, written as lines in order with structlog's."""

    def __init__(self, lines: _Lines) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.msg(self.format(record))
        except Exception:
            self.handleError(record)


_STAMP_TIME = _Stamp()
_STAMP: list[structlog.typing.Processor] = [structlog.processors.add_log_level, _STAMP_TIME]


def configure_logging(fmt: str = "auto", stream: TextIO | None = None) -> RecordSink | None:
    """Every logger writes to `stream` (stdout) from now on, as `fmt` says. When that is
    JSON lines, what writes a call's canonical line fastest (`_Lines.write_record`)."""
    stream = stream or sys.stdout
    json_lines = as_json(fmt, stream)
    render = _processors(json_lines)
    lines = _Lines(stream)  # one for all loggers: one lock, one write a turn
    atexit.register(lines.flush)
    structlog.configure(
        processors=[merge_bound, *_STAMP, *render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lines,
        cache_logger_on_first_use=True,
    )
    # The standard library's records (uvicorn's, asyncio's, warnings) in the same
    # format and stream: a record's message becomes the event, its logger is named.
    handler = _Records(lines)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_STAMP],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    logging.root.handlers = [handler]
    logging.captureWarnings(True)
    return lines.write_record if json_lines else None


def flush_logs() -> None:
    """Write the log lines held for the end of the loop's turn now (before the process
    ends by a signal, which flushes nothing)."""
    factory = structlog.get_config()["logger_factory"]
    if isinstance(factory, _Lines):
        factory.flush()


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
