import json
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.translate.response import with_leading_space
from proxy.translate.sse import SSEDecoder
from proxy.translate.stream import CompletionStream, Phase
from tests.fakes.sse import delta, event

GOLDEN = Path(__file__).parents[2] / "golden"
# name -> how the stream is set up; upstream from tests/golden/NAME.upstream.sse
SCENARIOS = {
    "local-stop": {"local_stops": ["\n\n"]},
    "error-midstream": {},
    "cut": {},
    "mixed-blocks": {},
    "unicode-stop": {"prefill": True},
}


def upstream_bytes(name: str, shared: Path) -> bytes:
    if name == "sky":  # the recorded real Messages stream
        return (shared / "recorded/messages-stream.response.sse").read_bytes()
    return (GOLDEN / f"{name}.upstream.sse").read_bytes()


def run(
    data: bytes,
    cuts: Iterable[int] = (),
    *,
    v1: bool,
    prefill: bool = False,
    local_stops: Sequence[str] = (),
) -> tuple[bytes, CompletionStream]:
    stream = CompletionStream(model="claude-2.1", v1=v1, prefill=prefill, local_stops=local_stops)
    out: list[bytes] = []
    start = 0
    for cut in [*cuts, len(data)]:
        out.append(stream.feed(data[start:cut]))
        start = cut
    out.append(stream.flush())
    return b"".join(out), stream


def cases() -> Iterator[pytest.ParameterSet]:
    for name, options in {"sky": {}, **SCENARIOS}.items():
        for version in ("v1", "v2"):
            yield pytest.param(name, version, options, id=f"{name}-{version}")


CASES = list(cases())


def event_cuts(data: bytes) -> list[int]:
    """Offsets just after each event: the upstream's bytes as it wrote them."""
    cuts: list[int] = []
    start = 0
    while (end := data.find(b"\n\n", start)) != -1:
        start = end + 2
        cuts.append(start)
    return cuts


@pytest.mark.parametrize(("name", "version", "options"), CASES)
def test_golden_transcripts(name: str, version: str, options: dict[str, Any], shared: Path) -> None:
    """Each upstream transcript, arriving an event at a time, becomes exactly its expected
    legacy transcript."""
    expected = (GOLDEN / f"{name}.{version}.sse").read_bytes()
    data = upstream_bytes(name, shared)
    out, _ = run(data, event_cuts(data), v1=version == "v1", **options)
    assert out == expected


def v1_lines(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\n\n") if line]


def assert_v1_says_the_same(out: bytes, golden: bytes) -> None:
    """A v1 stream cut differently says the same: its intermediate lines are some of the
    golden ones, in order (at most one per chunk: the latest text), then the same end."""
    ours, theirs = v1_lines(out), v1_lines(golden)
    end = 2 if theirs[-1] == b"data: [DONE]" else 1
    assert ours[-end:] == theirs[-end:]
    middle = iter(theirs[:-end])
    assert all(line in middle for line in ours[:-end])  # a subsequence


@pytest.mark.parametrize(("name", "version", "options"), CASES)
def test_every_byte_split(name: str, version: str, options: dict[str, Any], shared: Path) -> None:
    """Cutting the upstream bytes anywhere, or feeding them one by one, changes nothing
    (v2); for v1 it changes only how many intermediate lines carry the text."""
    data = upstream_bytes(name, shared)
    v1 = version == "v1"
    golden, _ = run(data, event_cuts(data), v1=v1, **options)
    splits = [[cut] for cut in range(len(data) + 1)] + [range(1, len(data))]
    for cuts in splits:
        out, _ = run(data, cuts, v1=v1, **options)
        if v1:
            assert_v1_says_the_same(out, golden)
        else:
            assert out == golden, cuts
    assert run(data, range(1, len(data)), v1=v1, **options)[0] == golden  # byte by byte


def test_v1_gives_one_line_per_chunk(shared: Path) -> None:
    """A chunk with many deltas gives one line with the text so far, not one per delta:
    a slow reader's backlog does not multiply its text (tests/live/test_backpressure.py)."""
    data = START + TEXT + b"".join(event("content_block_delta", index=0,
        delta={"type": "text_delta", "text": f"w{n} "}) for n in range(50))  # fmt: skip
    stream = CompletionStream(model="m", v1=True, prefill=False)
    lines = v1_lines(stream.feed(data))
    assert len(lines) == 1  # all but the newest piece, held back for the next line
    assert json.loads(lines[0][6:])["completion"] == " " + "".join(f"w{n} " for n in range(49))
    assert stream.feed(b"") == b""  # nothing new: no line


def diffed_text(out: bytes) -> str:
    """What Vercel's `ai` 2.1+ AnthropicStream shows of a v1 stream: each line minus the
    previous one when it extends it, else the whole line (its parseAnthropicStream)."""
    shown: list[str] = []
    previous = ""
    for line in v1_lines(out):
        body = json.loads(line[6:]) if line.startswith(b"data: {") else {}
        if "completion" not in body:
            continue
        text = body["completion"]
        if not previous or (len(text) > len(previous) and text.startswith(previous)):
            shown.append(text[len(previous) :])
            previous = text
        else:
            shown.append(text)
    return "".join(shown)


PIECES = st.lists(st.text(alphabet='ab \n"é🌍', max_size=4), max_size=8)


@given(PIECES, st.sets(st.integers(0, 400)), st.booleans(), st.booleans())
@settings(max_examples=300)
def test_v1_last_line_always_brings_new_text(
    pieces: list[str], cuts: set[int], stop_early: bool, fail: bool
) -> None:
    """However the text comes and the bytes are cut, the last v1 text line is longer than
    the one before (unless the completion is empty and it is the only one), so a client
    that diffs lines shows the text once; a failure still delivers every piece first."""
    data = START + TEXT + b"".join(delta(piece) for piece in pieces)
    data += ERROR if fail else event("message_delta", delta={"stop_reason": "end_turn"})
    data += b"" if fail else event("message_stop")
    stops = ["\n\n"] if stop_early else []
    out, stream = run(data, sorted(c for c in cuts if c < len(data)), v1=True, local_stops=stops)
    texts = [
        json.loads(line[6:])["completion"] for line in v1_lines(out) if b'"completion"' in line
    ]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in pairwise(texts)), texts
    assert diffed_text(out) == stream.text == (texts[-1] if texts else "")
    whole = with_leading_space("".join(pieces), prefill=False)
    if not stop_early:
        assert stream.text == ("" if not "".join(pieces) else whole)
    assert texts == [""] or not texts or texts[-1]  # an empty completion is its only line
    assert stream.phase is (Phase.FAILED if fail and stream.stop is None else Phase.FINISHED)


def test_v1_empty_completion_is_one_line() -> None:
    """No text at all: the final line, with an empty completion, is the only one."""
    data = START + TEXT + event("message_delta", delta={"stop_reason": "end_turn"})
    out, _ = run(data + event("message_stop"), range(1, len(data)), v1=True)
    (line, done) = v1_lines(out)
    assert (json.loads(line[6:])["completion"], done) == ("", b"data: [DONE]")


def test_v1_held_text_goes_out_before_an_error() -> None:
    """A failure after text: the client gets all the text, then the error line."""
    data = START + TEXT + delta("Half") + delta(" an answer") + ERROR
    out, _ = run(data, event_cuts(data), v1=True)
    texts = [json.loads(line[6:]).get("completion") for line in v1_lines(out)[:-1]]
    assert texts == [" Half", " Half an answer", None]  # None: the error line


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_crlf_upstream_is_the_same(version: str, shared: Path) -> None:
    """An upstream with \\r\\n line endings gives the same output."""
    data = upstream_bytes("sky", shared)
    crlf = data.replace(b"\n", b"\r\n")
    v1 = version == "v1"
    assert run(crlf, v1=v1)[0] == run(data, v1=v1)[0]
    assert run(crlf, range(1, len(crlf)), v1=v1)[0] == run(data, range(1, len(data)), v1=v1)[0]


def completions(sse: bytes) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    events = decoder.decode(sse) + decoder.flush()
    return [(e.event, json.loads(e.data)) for e in events if e.event == "completion"]


def test_matches_the_recorded_legacy_stream(shared: Path) -> None:
    """The recorded Messages stream, translated, is the recorded legacy stream: same texts,
    order and final stop fields (ids, padding and ping position aside)."""
    out, stream = run(upstream_bytes("sky", shared), v1=False)
    legacy = (shared / "recorded/legacy-stream.response.sse").read_bytes()
    ours, theirs = completions(out), completions(legacy)
    for (_, mine), (_, recorded) in zip(ours, theirs, strict=True):
        assert list(mine) == list(recorded)  # same keys, same order
        for key in ("completion", "stop_reason", "model", "stop", "type"):
            assert mine[key] == recorded[key]
        assert mine["id"] == mine["log_id"] == "compl_011i9EJybqHR6a7pmHLohGnu"
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in out
    assert stream.phase is Phase.FINISHED
    assert (stream.input_tokens, stream.output_tokens) == (21, 10)
    assert stream.upstream_stop_reason == "end_turn"


def test_v1_every_intermediate_event_has_explicit_nulls(shared: Path) -> None:
    """TypeScript 0.4 resolves on the first non-null stop_reason: every other event says null."""
    out, _ = run(upstream_bytes("sky", shared), v1=True)
    lines = [line for line in out.split(b"\n") if line.startswith(b"data: {")]
    bodies = [json.loads(line[6:]) for line in lines]
    assert all(b["stop_reason"] is None and b["stop"] is None for b in bodies[:-1])
    assert all(b["truncated"] is False and b["exception"] is None for b in bodies)
    assert bodies[-1]["stop_reason"] == "stop_sequence"
    assert out.endswith(b"data: [DONE]\n\n")
    assert b"event:" not in out


def test_v1_error_line_has_no_stop_reason_key(shared: Path) -> None:
    """TypeScript 0.4 settles on an error line only if it carries no stop_reason at all."""
    out, stream = run((GOLDEN / "error-midstream.upstream.sse").read_bytes(), v1=True)
    error = json.loads(out.split(b"\n\n")[-3][6:])
    assert "stop_reason" not in error
    assert error["exception"] == "overloaded_error: Overloaded"
    assert stream.phase is Phase.FAILED
    assert stream.error == {"type": "overloaded_error", "message": "Overloaded"}


def test_local_stop_ends_early_and_ignores_the_rest(shared: Path) -> None:
    """After a bridge-enforced stop, the stream is done and later bytes are ignored."""
    data = (GOLDEN / "local-stop.upstream.sse").read_bytes()
    stream = CompletionStream(model="m", v1=False, prefill=False, local_stops=["\n\n"])
    stream.feed(data)
    assert stream.done and stream.stop == "\n\n"
    assert stream.feed(b"event: message_stop\ndata: {}\n\n") == b""
    assert stream.flush() == b""


def test_keep_text_for_logging(shared: Path) -> None:
    """The text sent can be kept for the log (it is for v1 anyway)."""
    stream = CompletionStream(model="m", v1=False, prefill=False, keep_text=True)
    stream.feed(upstream_bytes("sky", shared))
    assert stream.text == " Light scatters blue."


START = event("message_start", message={"id": "msg_1", "usage": {"input_tokens": 1}})
TEXT = event("content_block_start", index=0, content_block={"type": "text", "text": ""})
ERROR = event("error", error={"type": "overloaded_error", "message": "Overloaded"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TEXT, "bad upstream stream: content_block_start before message_start"),
        (START + START, "bad upstream stream: a second message_start"),
        (
            b"event: message_start\ndata: {not json\n\n",
            "bad upstream stream: message_start event data is not JSON",
        ),
        (b"data: [1]\n\n", "bad upstream stream: message event data is not an object"),
        (event("message_start"), "bad upstream stream: message_start has no message object"),
        (
            START + event("content_block_delta", index=0),
            "bad upstream stream: content_block_delta has no delta object",
        ),
    ],
)
def test_impossible_orders_fail_loudly(data: bytes, message: str) -> None:
    """An upstream that breaks the Messages protocol gets an api_error event, not silence."""
    stream = CompletionStream(model="m", v1=False, prefill=False)
    out = stream.feed(data)
    assert stream.phase is Phase.FAILED
    assert json.loads(out.split(b"data: ")[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": message},
    }


@pytest.mark.parametrize("v1", [True, False])
def test_a_field_of_the_wrong_type_is_a_malformed_event(v1: bool) -> None:
    """`usage` that is not an object: the event is malformed, the stream fails after the
    text it had (for v1 too: the held piece is not lost)."""
    data = START + TEXT + delta("Hi") + event("message_delta", delta={}, usage=1)
    out, stream = run(data, v1=v1)
    assert stream.error == {
        "type": "api_error",
        "message": "bad upstream stream: malformed message_delta event",
    }
    assert b'"completion":" Hi"' in out


def test_error_event_without_details() -> None:
    """A bare error event still ends the stream with a typed error."""
    stream = CompletionStream(model="m", v1=False, prefill=False)
    stream.feed(START + event("error"))
    assert stream.error == {
        "type": "api_error",
        "message": "upstream sent an error event without details",
    }


def test_initial_block_text_and_unknown_block_deltas() -> None:
    """Text in content_block_start counts; deltas for non-text blocks do not."""
    data = (
        START
        + event("content_block_start", index=0, content_block={"type": "text", "text": "Hi"})
        + event("content_block_start", index=1, content_block={"type": "tool_use"})
        + event("content_block_delta", index=1, delta={"type": "text_delta", "text": "nope"})
        + event("message_delta", delta={"stop_reason": "tool_use"})
        + event("message_stop")
    )
    out, stream = run(data, v1=False)
    assert [c["completion"] for _, c in completions(out)] == [" Hi", ""]
    assert (stream.stop_reason, stream.stop) == ("stop_sequence", None)


def test_fail_after_done_adds_nothing(shared: Path) -> None:
    """Once finished, a late failure cannot append an error."""
    _, stream = run(upstream_bytes("sky", shared), v1=False)
    assert stream.fail({"type": "api_error", "message": "late"}) == b""


@pytest.mark.parametrize("v1", [True, False])
def test_a_stream_cut_inside_an_event_is_a_lost_connection(v1: bool) -> None:
    """Regression: an upstream body that ended inside an event's data line was reported
    as bad upstream data ("... event data is not JSON"); it is a cut: connection lost."""
    data = START + TEXT + event("content_block_delta", index=0, delta={"type": "text_delta"})
    out, stream = run(data[:-20], v1=v1)
    assert stream.error == {"type": "api_error", "message": "upstream connection lost"}
    assert b"not JSON" not in out


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    """Only the final blank line missing: the event is whole, and the stream ends cleanly."""
    data = START + TEXT + event("message_delta", delta={"stop_reason": "end_turn"})
    out, stream = run(data + event("message_stop").rstrip(b"\n"), v1=False)
    assert stream.phase is Phase.FINISHED
    assert [c["stop_reason"] for _, c in completions(out)] == ["stop_sequence"]


@pytest.mark.parametrize("v1", [True, False])
def test_an_event_over_the_limit_fails_the_stream(v1: bool) -> None:
    """An upstream event past max_event_bytes ends the stream with an api_error, after
    the text that came before it."""
    hello = event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"})
    stream = CompletionStream(model="m", v1=v1, prefill=False, max_event_bytes=1000)
    out = stream.feed(START + TEXT + hello + b"data: " + b"a" * 2000)
    assert stream.error == {
        "type": "api_error",
        "message": "upstream stream event is larger than 1000 bytes",
    }
    first = json.loads(re.findall(rb"data: (.*)", out)[0])
    assert first["completion"] == " Hello"
    assert stream.feed(b"\n\n") == b"" and stream.flush() == b""
