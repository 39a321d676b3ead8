import json
import re
from pathlib import Path

import pytest

from proxy.translate.sse import SSEDecoder
from proxy.translate.stream import CompletionStream, Phase

GOLDEN = Path(__file__).parent.parent / "golden"
# name -> how the stream is set up; upstream from tests/golden/NAME.upstream.sse
SCENARIOS = {
    "local-stop": {"local_stops": ["\n\n"]},
    "error-midstream": {},
    "cut": {},
    "mixed-blocks": {},
    "unicode-stop": {"prefill": True},
}


def upstream_bytes(name, shared):
    if name == "sky":  # the recorded real Messages stream
        return (shared / "recorded/messages-stream.response.sse").read_bytes()
    return (GOLDEN / f"{name}.upstream.sse").read_bytes()


def run(data, cuts=(), *, v1, prefill=False, local_stops=()):
    stream = CompletionStream(model="claude-2.1", v1=v1, prefill=prefill, local_stops=local_stops)
    out, start = [], 0
    for cut in [*cuts, len(data)]:
        out.append(stream.feed(data[start:cut]))
        start = cut
    out.append(stream.flush())
    return b"".join(out), stream


def cases():
    for name, options in {"sky": {}, **SCENARIOS}.items():
        for version in ("v1", "v2"):
            yield pytest.param(name, version, options, id=f"{name}-{version}")


CASES = list(cases())


def event_cuts(data):
    """Offsets just after each event: the upstream's bytes as it wrote them."""
    cuts, start = [], 0
    while (end := data.find(b"\n\n", start)) != -1:
        start = end + 2
        cuts.append(start)
    return cuts


@pytest.mark.parametrize(("name", "version", "options"), CASES)
def test_golden_transcripts(name, version, options, shared):
    """Each upstream transcript, arriving an event at a time, becomes exactly its expected
    legacy transcript."""
    expected = (GOLDEN / f"{name}.{version}.sse").read_bytes()
    data = upstream_bytes(name, shared)
    out, _ = run(data, event_cuts(data), v1=version == "v1", **options)
    assert out == expected


def v1_lines(out):
    return [line for line in out.split(b"\n\n") if line]


def assert_v1_says_the_same(out, golden):
    """A v1 stream cut differently says the same: its intermediate lines are some of the
    golden ones, in order (at most one per chunk: the latest text), then the same end."""
    ours, theirs = v1_lines(out), v1_lines(golden)
    end = 2 if theirs[-1] == b"data: [DONE]" else 1
    assert ours[-end:] == theirs[-end:]
    middle = iter(theirs[:-end])
    assert all(line in middle for line in ours[:-end])  # a subsequence


@pytest.mark.parametrize(("name", "version", "options"), CASES)
def test_every_byte_split(name, version, options, shared):
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


def test_v1_gives_one_line_per_chunk(shared):
    """A chunk with many deltas gives one line with the text so far, not one per delta:
    a slow reader's backlog does not multiply its text (tests/test_backpressure.py)."""
    data = START + TEXT + b"".join(event("content_block_delta", index=0,
        delta={"type": "text_delta", "text": f"w{n} "}) for n in range(50))  # fmt: skip
    stream = CompletionStream(model="m", v1=True, prefill=False)
    lines = v1_lines(stream.feed(data))
    assert len(lines) == 1
    assert json.loads(lines[0][6:])["completion"] == " " + "".join(f"w{n} " for n in range(50))
    assert stream.feed(b"") == b""  # nothing new: no line


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_crlf_upstream_is_the_same(version, shared):
    """An upstream with \\r\\n line endings gives the same output."""
    data = upstream_bytes("sky", shared)
    crlf = data.replace(b"\n", b"\r\n")
    v1 = version == "v1"
    assert run(crlf, v1=v1)[0] == run(data, v1=v1)[0]
    assert run(crlf, range(1, len(crlf)), v1=v1)[0] == run(data, range(1, len(data)), v1=v1)[0]


def completions(sse: bytes):
    decoder = SSEDecoder()
    events = decoder.decode(sse) + decoder.flush()
    return [(e.event, json.loads(e.data)) for e in events if e.event == "completion"]


def test_matches_the_recorded_legacy_stream(shared):
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


def test_v1_every_intermediate_event_has_explicit_nulls(shared):
    """TypeScript 0.4 resolves on the first non-null stop_reason: every other event says null."""
    out, _ = run(upstream_bytes("sky", shared), v1=True)
    lines = [line for line in out.split(b"\n") if line.startswith(b"data: {")]
    bodies = [json.loads(line[6:]) for line in lines]
    assert all(b["stop_reason"] is None and b["stop"] is None for b in bodies[:-1])
    assert all(b["truncated"] is False and b["exception"] is None for b in bodies)
    assert bodies[-1]["stop_reason"] == "stop_sequence"
    assert out.endswith(b"data: [DONE]\n\n")
    assert b"event:" not in out


def test_v1_error_line_has_no_stop_reason_key(shared):
    """TypeScript 0.4 settles on an error line only if it carries no stop_reason at all."""
    out, stream = run((GOLDEN / "error-midstream.upstream.sse").read_bytes(), v1=True)
    error = json.loads(out.split(b"\n\n")[-3][6:])
    assert "stop_reason" not in error
    assert error["exception"] == "overloaded_error: Overloaded"
    assert stream.phase is Phase.FAILED
    assert stream.error == {"type": "overloaded_error", "message": "Overloaded"}


def test_local_stop_ends_early_and_ignores_the_rest(shared):
    """After a bridge-enforced stop, the stream is done and later bytes are ignored."""
    data = (GOLDEN / "local-stop.upstream.sse").read_bytes()
    stream = CompletionStream(model="m", v1=False, prefill=False, local_stops=["\n\n"])
    stream.feed(data)
    assert stream.done and stream.stop == "\n\n"
    assert stream.feed(b"event: message_stop\ndata: {}\n\n") == b""
    assert stream.flush() == b""


def test_keep_text_for_logging(shared):
    """The text sent can be kept for the log (it is for v1 anyway)."""
    stream = CompletionStream(model="m", v1=False, prefill=False, keep_text=True)
    stream.feed(upstream_bytes("sky", shared))
    assert stream.text == " Light scatters blue."


def event(kind, **data):
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


START = event("message_start", message={"id": "msg_1", "usage": {"input_tokens": 1}})
TEXT = event("content_block_start", index=0, content_block={"type": "text", "text": ""})


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
def test_impossible_orders_fail_loudly(data, message):
    """An upstream that breaks the Messages protocol gets an api_error event, not silence."""
    stream = CompletionStream(model="m", v1=False, prefill=False)
    out = stream.feed(data)
    assert stream.phase is Phase.FAILED
    assert json.loads(out.split(b"data: ")[1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": message},
    }


def test_error_event_without_details():
    """A bare error event still ends the stream with a typed error."""
    stream = CompletionStream(model="m", v1=False, prefill=False)
    stream.feed(START + event("error"))
    assert stream.error == {
        "type": "api_error",
        "message": "upstream sent an error event without details",
    }


def test_initial_block_text_and_unknown_block_deltas():
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


def test_fail_after_done_adds_nothing(shared):
    """Once finished, a late failure cannot append an error."""
    _, stream = run(upstream_bytes("sky", shared), v1=False)
    assert stream.fail({"type": "api_error", "message": "late"}) == b""


@pytest.mark.parametrize("v1", [True, False])
def test_a_stream_cut_inside_an_event_is_a_lost_connection(v1):
    """Regression: an upstream body that ended inside an event's data line was reported
    as bad upstream data ("... event data is not JSON"); it is a cut: connection lost."""
    data = START + TEXT + event("content_block_delta", index=0, delta={"type": "text_delta"})
    out, stream = run(data[:-20], v1=v1)
    assert stream.error == {"type": "api_error", "message": "upstream connection lost"}
    assert b"not JSON" not in out


def test_a_last_event_without_its_blank_line_still_counts():
    """Only the final blank line missing: the event is whole, and the stream ends cleanly."""
    data = START + TEXT + event("message_delta", delta={"stop_reason": "end_turn"})
    out, stream = run(data + event("message_stop").rstrip(b"\n"), v1=False)
    assert stream.phase is Phase.FINISHED
    assert [c["stop_reason"] for _, c in completions(out)] == ["stop_sequence"]


@pytest.mark.parametrize("v1", [True, False])
def test_an_event_over_the_limit_fails_the_stream(v1):
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
