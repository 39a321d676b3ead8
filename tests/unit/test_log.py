import asyncio
import io
import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterator

import pytest
import structlog

from proxy.obs.log import bind, configure_logging, unbind
from proxy.obs.record import CompleteRecord


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    handlers = logging.root.handlers[:]
    yield
    structlog.reset_defaults()
    logging.root.handlers = handlers
    logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_structlog")
def test_json_lines_when_not_a_terminal() -> None:
    """`auto` on a non-terminal writes one JSON object per line with level and UTC time."""
    out = io.StringIO()
    configure_logging("auto", stream=out)
    structlog.get_logger("t").info("complete", status=200)
    line = json.loads(out.getvalue())
    assert (line["event"], line["status"], line["level"]) == ("complete", 200, "info")
    assert line["timestamp"].endswith("Z")


@pytest.mark.usefixtures("restore_structlog")
def test_console_format_is_not_json() -> None:
    """`console` is for people: not JSON."""
    out = io.StringIO()
    configure_logging("console", stream=out)
    structlog.get_logger("t").info("complete", status=200)
    assert "complete" in out.getvalue()
    with pytest.raises(ValueError):
        json.loads(out.getvalue())


@pytest.mark.usefixtures("restore_structlog")
def test_exceptions_are_one_json_line() -> None:
    """A logged exception stays inside its JSON line, and odd values do not break it."""
    out = io.StringIO()
    configure_logging("json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("failed", odd=object())
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert "ValueError: boom" in entry["exception"]
    assert entry["odd"].startswith("<object object")


@pytest.mark.usefixtures("restore_structlog")
def test_standard_library_records_are_json_lines_too() -> None:
    """uvicorn's messages (stdlib logging) and Python's warnings come out as JSON lines in
    the same stream, the message as the event, the logger named."""
    out = io.StringIO()
    configure_logging("json", stream=out)
    library = logging.getLogger("a.library")  # as uvicorn.error in the bridge process
    library.error("Cancel %s running task(s)", 2)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        library.exception("Exception in ASGI application\n")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the suite turns warnings into errors
        warnings.warn("careful", ResourceWarning, stacklevel=1)
    cancel, failed, warned = (json.loads(line) for line in out.getvalue().splitlines())
    assert (cancel["event"], cancel["logger"], cancel["level"]) == (
        "Cancel 2 running task(s)",
        "a.library",
        "error",
    )
    assert cancel["timestamp"].endswith("Z")
    assert "RuntimeError: boom" in failed["exception"]
    assert "careful" in warned["event"] and warned["logger"] == "py.warnings"


@pytest.mark.usefixtures("restore_structlog")
def test_a_record_written_directly_is_the_line_structlog_writes() -> None:
    """The JSON log's fast writer of a call's canonical line gives what the processors
    give the same fields: same keys in the same order, same values, what is bound
    included (but a field of the record's own wins)."""
    out = io.StringIO()
    write_record = configure_logging("json", stream=out)
    assert write_record is not None
    record = CompleteRecord(format="v1", route="canary", status=200, adaptations=["x:y"])
    token = bind(call_id="00ff", route="bound-route", worker=2)
    try:
        write_record(record.EVENT, record.line())
        structlog.get_logger("t").info(record.EVENT, **record.line())
    finally:
        unbind(token)
    structlog.get_logger("t").info(record.EVENT, **record.line())
    direct, logged, unbound = (json.loads(line) for line in out.getvalue().splitlines())
    assert direct.pop("timestamp").endswith("Z") and logged.pop("timestamp").endswith("Z")
    assert list(direct.items()) == list(logged.items())
    assert (direct["call_id"], direct["route"], direct["worker"]) == ("00ff", "canary", 2)
    assert "call_id" not in unbound


@pytest.mark.usefixtures("restore_structlog")
def test_console_has_no_fast_record_writer() -> None:
    """A console log is for people: records go through structlog's console renderer."""
    assert configure_logging("console", stream=io.StringIO()) is None


class _Interrupting(io.StringIO):
    """A stream whose first write is interrupted by `handler`: as a signal handler (run
    in the thread it interrupts) that logs, landing while the log is being written."""

    def __init__(self, handler: Callable[[], None]) -> None:
        super().__init__()
        self._handler: Callable[[], None] | None = handler

    def write(self, text: str) -> int:
        handler, self._handler = self._handler, None
        if handler is not None:
            handler()
        return super().write(text)


def _in_thread(work: Callable[[], None]) -> None:
    """Run `work` in a thread; fail (not hang) if it does not end within 10 s."""
    done = threading.Thread(target=work, daemon=True)
    done.start()
    done.join(timeout=10)
    assert not done.is_alive(), "the log hung"


@pytest.mark.usefixtures("restore_structlog")
def test_a_line_logged_while_the_log_writes_is_written_after_it() -> None:
    """A signal handler that logs (uvicorn's on SIGTERM, the supervisor's) while a line
    is being written, with no event loop: neither line is lost, none hangs."""
    out = _Interrupting(lambda: structlog.get_logger("t").info("bridge.draining"))
    configure_logging("json", stream=out)
    _in_thread(lambda: structlog.get_logger("t").info("complete", status=200))
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["complete", "bridge.draining"]


@pytest.mark.usefixtures("restore_structlog")
def test_a_line_logged_while_the_loop_flushes_is_written_too() -> None:
    """The same inside a running loop, where a turn's lines are written together at the
    start of the next: the handler's line, logged during that write, is written too."""
    out = _Interrupting(lambda: structlog.get_logger("t").info("bridge.draining"))
    configure_logging("json", stream=out)

    async def calls() -> None:
        for status in (200, 201):
            structlog.get_logger("t").info("complete", status=status)
        for _ in range(3):  # the turn that flushes, and one for the handler's line
            await asyncio.sleep(0)

    _in_thread(lambda: asyncio.run(calls()))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line.get("status")) for line in lines] == [
        ("complete", 200),
        ("complete", 201),
        ("bridge.draining", None),
    ]
