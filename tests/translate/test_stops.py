import pytest

from proxy.translate.stops import StopScanner, find_stop


def test_find_stop_earliest_end_wins():
    """Of two matches, the one that ends first is the one a generating model hit first."""
    assert find_stop("ab\n\ncd", ["\n\n", "\n"]) == (2, "\n")
    assert find_stop("abc", ["x"]) is None


def test_find_stop_same_end_prefers_longer():
    """Matches ending together: the longer one started earlier and is reported."""
    assert find_stop("a b\n", ["b\n", "\n"]) == (2, "b\n")


def scan(pieces, stops):
    scanner = StopScanner(stops)
    emitted, matched = [], None
    for piece in pieces:
        text, matched = scanner.feed(piece)
        emitted.append(text)
        if matched:
            return "".join(emitted), matched
    return "".join(emitted) + scanner.flush(), None


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["line one", "\n", "line two"], ["\n"], ("line one", "\n")),
        (["a\n", "\nb"], ["\n\n"], ("a", "\n\n")),
        (["no stop ", "here"], ["\n\n"], ("no stop here", None)),
        (["ends with newline\n"], ["\n\n"], ("ends with newline\n", None)),
    ],
)
def test_scanner_across_pieces(pieces, stops, expected):
    """A stop split over pieces still matches; a held partial tail is flushed at the end."""
    assert scan(pieces, stops) == expected


def test_scanner_holds_back_only_a_possible_start():
    """Text that cannot begin a stop is emitted at once."""
    scanner = StopScanner(["\n\n"])
    assert scanner.feed("abc\n") == ("abc", None)
    assert scanner.feed("x") == ("\nx", None)
    assert scanner.flush() == ""


def test_scanner_every_split_matches_whole_text():
    """Cutting the text anywhere gives the same answer as scanning it whole."""
    text = "one two\n three\n\nfour"
    stops = ["\n\n", "  "]
    whole = find_stop(text, stops)
    assert whole == (text.index("\n\n"), "\n\n")
    for cut in range(len(text) + 1):
        assert scan([text[:cut], text[cut:]], stops) == (text[: whole[0]], "\n\n")
