import pytest

from proxy.translate.stops import StopScanner, find_stop


def test_find_stop_earliest_end_wins() -> None:
    """Of two matches, the one that ends first is the one a generating model hit first."""
    assert find_stop("ab\n\ncd", ["\n\n", "\n"]) == (2, "\n")
    assert find_stop("abc", ["x"]) is None


def test_find_stop_same_end_prefers_longer() -> None:
    """Matches ending together: the longer one started earlier and is reported."""
    assert find_stop("a b\n", ["b\n", "\n"]) == (2, "b\n")


def scan(pieces: list[str], stops: list[str]) -> tuple[str, str | None]:
    scanner = StopScanner(stops)
    emitted: list[str] = []
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
def test_scanner_across_pieces(
    pieces: list[str], stops: list[str], expected: tuple[str, str | None]
) -> None:
    """A stop split over pieces still matches; a held partial tail is flushed at the end."""
    assert scan(pieces, stops) == expected


def test_scanner_holds_back_only_a_possible_start() -> None:
    """Text that cannot begin a stop is emitted at once."""
    scanner = StopScanner(["\n\n"])
    assert scanner.feed("abc\n") == ("abc", None)
    assert scanner.feed("x") == ("\nx", None)
    assert scanner.flush() == ""


def test_scanner_every_split_matches_whole_text() -> None:
    """Cutting the text anywhere gives the same answer as scanning it whole."""
    text = "one two\n three\n\nfour"
    stops = ["\n\n", "  "]
    whole = find_stop(text, stops)
    assert whole == (text.index("\n\n"), "\n\n")
    for cut in range(len(text) + 1):
        assert scan([text[:cut], text[cut:]], stops) == (text[: whole[0]], "\n\n")


def _find_stop_by_search(text: str, stops: list[str]) -> tuple[int, str] | None:
    """The definition, by brute force: of the matches, the one that ends first, then the
    longest."""
    found = [(start + len(stop), start, stop) for stop in stops for start in _starts(text, stop)]
    return None if not found else (min(found)[1], min(found)[2])


def _starts(text: str, stop: str) -> list[int]:
    return [i for i in range(len(text) - len(stop) + 1) if text.startswith(stop, i)]


@pytest.mark.parametrize(
    "stops",
    [
        ["\n"],
        ["\n\n", "\n \n", " \n\n"],
        ["  ", "\t", "\n\n\n", " \n"],
        ["ab", "b", "bab", "abab"],  # overlapping, with fail links between them
        ["]", "^", "-", "\\"],  # characters a character class must escape
    ],
)
def test_find_stop_agrees_with_brute_force_at_every_split(stops: list[str]) -> None:
    """Whole or in two pieces, the scanner reports exactly the brute-force match."""
    texts = ["", "x", "a \n\tb  c\n\n\nd", "abab bab", " \n\n \n", "x]^-\\y", "b" * 5]
    for text in texts:
        expected = _find_stop_by_search(text, stops)
        assert find_stop(text, stops) == expected
        for cut in range(len(text) + 1):
            emitted, matched = scan([text[:cut], text[cut:]], stops)
            if expected is None:
                assert (emitted, matched) == (text, None)
            else:
                assert (emitted, matched) == (text[: expected[0]], expected[1])


def test_no_stops_never_match() -> None:
    assert find_stop("abc \n", []) is None


def test_many_stops_cost_one_pass() -> None:
    """A thousand stops (the most a request may send): the scan steps once per character
    of a whitespace run and skips the rest, so a long text with none of them is cheap."""
    stops = [" " * n + "\n" for n in range(1000)]
    scanner = StopScanner(stops)
    assert scanner.feed("word " * 10_000) == ("word " * 9_999 + "word", None)
    assert scanner.feed("   \n") == ("", "    \n")  # the held space begins the longest
