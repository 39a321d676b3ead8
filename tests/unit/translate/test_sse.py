import time
from collections.abc import Iterable

import pytest

from proxy.translate.sse import ServerSentEvent, SSEDecoder, encode

STREAM = (
    'event: completion\r\ndata: {"a": "é 🌍"}\r\n\r\n'
    ": a comment\n"
    "event: ping\ndata: {}\n\n"
    "data: line one\ndata: line two\n\n"
    "id: 7\nretry: 10\nevent: x\ndata:no-space\r\r"
    "event: orphan\n\n"
).encode()
EXPECTED = [
    ServerSentEvent("completion", '{"a": "é 🌍"}'),
    ServerSentEvent("ping", "{}"),
    ServerSentEvent("message", "line one\nline two"),
    ServerSentEvent("x", "no-space"),
]


def decode_in_pieces(data: bytes, cuts: Iterable[int]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += decoder.decode(data[start:cut])
        start = cut
    return events + decoder.flush()


def test_whole() -> None:
    """Fields, comments, multi-line data, all three line endings, no-data events dropped."""
    assert decode_in_pieces(STREAM, []) == EXPECTED


def test_every_single_cut() -> None:
    """A cut at any byte (inside UTF-8, between \\r and \\n) changes nothing."""
    for cut in range(len(STREAM) + 1):
        assert decode_in_pieces(STREAM, [cut]) == EXPECTED, cut


def test_byte_by_byte() -> None:
    """One byte at a time gives the same events."""
    assert decode_in_pieces(STREAM, range(1, len(STREAM))) == EXPECTED


def test_flush_dispatches_an_unterminated_event() -> None:
    """A stream that ends without its blank line still yields its last event."""
    decoder = SSEDecoder()
    assert decoder.decode(b"event: a\ndata: 1") == []
    assert decoder.flush() == [ServerSentEvent("a", "1")]
    assert decoder.flush() == []


def test_cr_then_empty_chunk_then_lf() -> None:
    """An empty chunk between \\r and \\n does not break the pair."""
    decoder = SSEDecoder()
    events = decoder.decode(b"data: 1\r") + decoder.decode(b"") + decoder.decode(b"\n\r\n")
    assert events == [ServerSentEvent("message", "1")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    """Garbage bytes never raise."""
    assert SSEDecoder().decode(b"data: \xff\n\n") == [ServerSentEvent("message", "\ufffd")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [((b"{}", "ping"), b"event: ping\ndata: {}\n\n"), ((b"[DONE]",), b"data: [DONE]\n\n")],
)
def test_encode(args: tuple[bytes] | tuple[bytes, str], expected: bytes) -> None:
    """Events are written with \\n endings, named or data-only."""
    assert encode(*args) == expected


def timed_decode(line: bytes, piece: int) -> tuple[float, list[ServerSentEvent]]:
    decoder = SSEDecoder()
    started = time.perf_counter()
    events = [e for i in range(0, len(line), piece) for e in decoder.decode(line[i : i + piece])]
    return time.perf_counter() - started, events


def test_a_long_line_in_small_chunks_takes_linear_time() -> None:
    """Regression: the unfinished line was copied whole with every chunk, so one 40 MB data
    line (an upstream gone wrong) kept a bridge's event loop busy for over 15 s. A 4 MiB
    line in 1 KiB pieces now costs about what it costs in one piece (it cost over two
    hundred times as much), whatever the machine's speed: both are timed in one run."""
    line = b"data: " + b"x" * (4 * 1024 * 1024) + b"\r\n\r\n"
    whole = min(timed_decode(line, len(line))[0] for _ in range(3))
    pieces, events = min((timed_decode(line, 1024) for _ in range(3)), key=lambda r: r[0])
    assert pieces / whole < 20, (pieces, whole)  # here: about 1.5 now, 240 before
    assert events == [ServerSentEvent("message", "x" * (4 * 1024 * 1024))]


def test_an_event_over_the_limit_stops_the_decoding() -> None:
    """An unfinished line or an event's data lines past max_event_bytes end the decoding;
    events whole before it still come out, and nothing is read after."""
    decoder = SSEDecoder(max_event_bytes=100)
    assert decoder.decode(b"data: 1\n\ndata: " + b"x" * 50) == [ServerSentEvent("message", "1")]
    assert not decoder.too_large
    assert decoder.decode(b"x" * 50) == []
    assert decoder.too_large
    assert decoder.decode(b"\n\ndata: 2\n\n") == [] and decoder.flush() == []


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"y" * 60 + b"\n"] * 2 + [b"\n"],
        [b"data: 1\n\n" + (b"data: " + b"y" * 60 + b"\n") * 2 + b"\n"],
    ],
)
def test_data_lines_over_the_limit_stop_the_decoding(chunks: list[bytes]) -> None:
    """Many data lines count together, whole lines or not."""
    decoder = SSEDecoder(max_event_bytes=100)
    events = [e for chunk in chunks for e in decoder.decode(chunk)]
    assert decoder.too_large
    assert events in ([], [ServerSentEvent("message", "1")])


def test_an_event_at_the_limit_is_fine() -> None:
    line = b"data: " + b"z" * 94 + b"\n"  # 101 bytes with its line break
    decoder = SSEDecoder(max_event_bytes=101)
    assert decoder.decode(line + b"\n") == [ServerSentEvent("message", "z" * 94)]
    assert not decoder.too_large
