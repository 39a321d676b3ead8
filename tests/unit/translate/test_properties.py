"""Property tests: whatever a client sends, the core answers or refuses with a 400."""

import json
from fnmatch import fnmatchcase
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.models import ModelTable
from proxy.errors import InvalidRequest
from proxy.translate.prompt import parse_prompt
from proxy.translate.request import translate_request
from proxy.translate.stream import CompletionStream

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
MARKERS = st.sampled_from(
    ["\n\nHuman:", "\n\nAssistant:", "\\n\\nHuman:", "Human:", " ", "\n", "x"]
)
PROMPTS = st.lists(MARKERS | st.text(max_size=5), max_size=12).map("".join)
FIELDS = st.sampled_from(
    ["model", "prompt", "max_tokens_to_sample", "stop_sequences", "temperature", "top_k",
     "top_p", "metadata", "stream", "tags"]
)  # fmt: skip


@given(PROMPTS)
def test_any_prompt_parses_or_is_a_400(prompt: str) -> None:
    """No prompt raises anything but InvalidRequest; parsed ones fit the Messages rules."""
    try:
        conv = parse_prompt(prompt)
    except InvalidRequest as exc:
        assert exc.status == 400
        return
    roles = [m["role"] for m in conv.messages]
    assert "user" in roles
    assert all(a != b for a, b in pairwise(roles))
    assert all(m["content"] and m["content"] == m["content"].strip() for m in conv.messages)


@given(st.dictionaries(FIELDS, JSON | PROMPTS, max_size=10))
@settings(max_examples=300)
def test_any_body_translates_or_is_a_400(body: dict[str, object]) -> None:
    """No body raises anything but InvalidRequest."""
    try:
        translate_request(body, ModelTable())
    except InvalidRequest as exc:
        assert exc.status == 400


@given(st.binary(max_size=300), st.booleans())
def test_any_upstream_bytes_end_the_stream_in_a_defined_way(data: bytes, v1: bool) -> None:
    """Garbage from the upstream never raises; the stream always ends finished or failed."""
    stream = CompletionStream(model="m", v1=v1, prefill=False, local_stops=["\n"])
    stream.feed(data)
    stream.flush()
    assert stream.done


EVENT_TYPES = st.sampled_from(
    ["message_start", "content_block_start", "content_block_delta", "message_delta",
     "message_stop", "ping", "error", "content_block_stop"]
)  # fmt: skip


@given(st.lists(st.tuples(EVENT_TYPES, st.dictionaries(st.text(max_size=8), JSON)), max_size=8))
@settings(max_examples=300)
def test_any_event_payloads_end_the_stream_in_a_defined_way(
    events: list[tuple[str, dict[str, object]]],
) -> None:
    """Well-framed events with fields of any JSON type never raise out of the translator."""
    stream = CompletionStream(model="m", v1=False, prefill=False)
    for kind, data in events:
        stream.feed(f"event: {kind}\ndata: {json.dumps({**data, 'type': kind})}\n\n".encode())
    stream.flush()
    assert stream.done


@given(st.dictionaries(FIELDS, JSON | PROMPTS, max_size=10))
def test_every_translated_body_serialises(body: dict[str, object]) -> None:
    """Whatever passes validation can be sent: the Messages body always encodes."""
    from proxy.translate.response import dumps

    try:
        translation = translate_request(body, ModelTable())
    except InvalidRequest:
        return
    assert json.loads(dumps(translation.body)) == translation.body


GLOBS = st.lists(st.sampled_from(["a", "b", ".", "-", "*", "?", "[ab]", "[!a]", "\n"]), max_size=5)
NAMES = st.lists(st.sampled_from(["a", "b", "c", ".", "-", "\n", "A"]), max_size=6).map("".join)


@given(st.lists(GLOBS.map("".join), max_size=4), NAMES)
def test_a_model_resolves_by_its_first_matching_alias(globs: list[str], name: str) -> None:
    """The table's one compiled pattern picks what fnmatch, glob by glob, would: the
    first alias whose glob matches the whole name, case and all; else the name."""
    table = ModelTable(aliases=tuple((glob, f"target-{i}") for i, glob in enumerate(globs)))
    first = next((i for i, glob in enumerate(globs) if fnmatchcase(name, glob)), None)
    assert table.resolve(name) == (name if first is None else f"target-{first}")
