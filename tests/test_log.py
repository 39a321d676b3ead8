import io
import json

import pytest
import structlog

from proxy.log import configure_logging


@pytest.fixture
def restore_structlog():
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_structlog")
def test_json_lines_when_not_a_terminal():
    """`auto` on a non-terminal writes one JSON object per line with level and UTC time."""
    out = io.StringIO()
    configure_logging("auto", stream=out)
    structlog.get_logger("t").info("complete", status=200)
    line = json.loads(out.getvalue())
    assert (line["event"], line["status"], line["level"]) == ("complete", 200, "info")
    assert line["timestamp"].endswith("Z")


@pytest.mark.usefixtures("restore_structlog")
def test_console_format_is_not_json():
    """`console` is for people: not JSON."""
    out = io.StringIO()
    configure_logging("console", stream=out)
    structlog.get_logger("t").info("complete", status=200)
    assert "complete" in out.getvalue()
    with pytest.raises(ValueError):
        json.loads(out.getvalue())


@pytest.mark.usefixtures("restore_structlog")
def test_exceptions_are_one_json_line():
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
