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


def decode_in_pieces(data, cuts):
    decoder = SSEDecoder()
    events, start = [], 0
    for cut in [*cuts, len(data)]:
        events += decoder.decode(data[start:cut])
        start = cut
    return events + decoder.flush()


def test_whole():
    """Fields, comments, multi-line data, all three line endings, no-data events dropped."""
    assert decode_in_pieces(STREAM, []) == EXPECTED


def test_every_single_cut():
    """A cut at any byte (inside UTF-8, between \\r and \\n) changes nothing."""
    for cut in range(len(STREAM) + 1):
        assert decode_in_pieces(STREAM, [cut]) == EXPECTED, cut


def test_byte_by_byte():
    """One byte at a time gives the same events."""
    assert decode_in_pieces(STREAM, range(1, len(STREAM))) == EXPECTED


def test_flush_dispatches_an_unterminated_event():
    """A stream that ends without its blank line still yields its last event."""
    decoder = SSEDecoder()
    assert decoder.decode(b"event: a\ndata: 1") == []
    assert decoder.flush() == [ServerSentEvent("a", "1")]
    assert decoder.flush() == []


def test_cr_then_empty_chunk_then_lf():
    """An empty chunk between \\r and \\n does not break the pair."""
    decoder = SSEDecoder()
    events = decoder.decode(b"data: 1\r") + decoder.decode(b"") + decoder.decode(b"\n\r\n")
    assert events == [ServerSentEvent("message", "1")]


def test_invalid_utf8_is_replaced_not_raised():
    """Garbage bytes never raise."""
    assert SSEDecoder().decode(b"data: \xff\n\n") == [ServerSentEvent("message", "\ufffd")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [((b"{}", "ping"), b"event: ping\ndata: {}\n\n"), ((b"[DONE]",), b"data: [DONE]\n\n")],
)
def test_encode(args, expected):
    """Events are written with \\n endings, named or data-only."""
    assert encode(*args) == expected
