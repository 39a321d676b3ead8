import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from proxy.translate.response import (
    completion_id,
    dumps,
    error_envelope,
    legacy_stop,
    message_to_completion,
    with_leading_space,
)
from proxy.wire import Completion, MessagesResponse
from tests.fakes.factories import message


def convert(
    msg: dict[str, Any],
    *,
    prefill: bool = False,
    local_stops: Sequence[str] = (),
    v1: bool = False,
    model: str = "claude-2.1",
) -> Completion:
    # Tests build bodies as plain dicts, some deliberately off the Messages shape.
    body = cast(MessagesResponse, msg)
    return message_to_completion(body, model=model, prefill=prefill, local_stops=local_stops, v1=v1)


def test_recorded_legacy_response_shape(shared: Path) -> None:
    """Byte for byte the recorded /v1/complete body, given the same text from Messages."""
    legacy = (shared / "recorded/legacy.response.json").read_bytes()
    expected = json.loads(legacy)
    text = expected["completion"][1:]  # Messages answers without the leading space
    msg = message(text, id="msg_" + expected["id"].removeprefix("compl_"))
    assert dumps(convert(msg)) == legacy.rstrip(b"\n")  # the file ends in a newline


@pytest.mark.parametrize(
    ("reason", "sequence", "expected"),
    [
        ("end_turn", None, ("stop_sequence", "\n\nHuman:")),
        ("stop_sequence", "END", ("stop_sequence", "END")),
        ("max_tokens", None, ("max_tokens", None)),
        ("model_context_window_exceeded", None, ("max_tokens", None)),
        ("refusal", None, ("stop_sequence", None)),
        ("pause_turn", None, ("stop_sequence", None)),
        ("tool_use", None, ("stop_sequence", None)),
        (None, None, ("stop_sequence", None)),
    ],
)
def test_stop_reason_table(
    reason: str | None, sequence: str | None, expected: tuple[str, str | None]
) -> None:
    """Legacy stop_reason is only ever stop_sequence or max_tokens."""
    assert legacy_stop(reason, sequence) == expected


def test_ids() -> None:
    """`msg_X` becomes `compl_X`, as id and log_id."""
    assert completion_id("msg_011i9EJy") == "compl_011i9EJy"
    assert completion_id("weird") == "compl_weird"
    body = convert(message(id="msg_abc"))
    assert body["id"] == body["log_id"] == "compl_abc"


def test_leading_space_rules() -> None:
    """One space after `Assistant:`, unless prefilled, empty, or already whitespace."""
    assert with_leading_space("Hi", prefill=False) == " Hi"
    assert with_leading_space("Hi", prefill=True) == "Hi"
    assert with_leading_space("", prefill=False) == ""
    assert with_leading_space("\nHi", prefill=False) == "\nHi"
    assert with_leading_space(" Hi", prefill=False) == " Hi"


def test_model_echoed_as_asked() -> None:
    """The response names the model the client asked for."""
    assert convert(message(), model="claude-instant-1")["model"] == "claude-instant-1"


def test_v1_extras() -> None:
    """2023-01-01 and version-less bodies carry truncated and exception, at the end."""
    body = convert(message(), v1=True)
    assert list(body)[-2:] == ["truncated", "exception"]
    assert body["truncated"] is False and body["exception"] is None
    assert "truncated" not in convert(message())


def test_only_text_blocks_become_completion() -> None:
    """Thinking and tool blocks are not completion text."""
    msg = message(
        content=[
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "t", "name": "x", "input": {}},
            {"type": "text", "text": " there"},
        ]
    )
    assert convert(msg)["completion"] == " Hello there"


def test_local_stop_cuts_before_match_then_adds_space() -> None:
    """A bridge-enforced stop is matched on the model's own text, before the space is added."""
    body = convert(message("first line\nsecond"), local_stops=["\n"])
    assert body["completion"] == " first line"
    assert (body["stop_reason"], body["stop"]) == ("stop_sequence", "\n")


def test_local_stop_at_start_gives_empty_completion() -> None:
    """A stop that matches at once leaves an empty completion, with no space added."""
    body = convert(message("\nrest"), local_stops=["\n"])
    assert body["completion"] == ""


def test_no_local_match_keeps_upstream_stop() -> None:
    """Without a local match, the upstream's reason stands."""
    body = convert(message("abc", stop_reason="max_tokens"), local_stops=["\n"])
    assert (body["stop_reason"], body["stop"]) == ("max_tokens", None)


def test_error_envelope() -> None:
    """The one error shape, for bridge-made and relayed errors alike."""
    assert error_envelope("api_error", "boom") == {
        "type": "error",
        "error": {"type": "api_error", "message": "boom"},
    }


def test_dumps_is_compact_utf8() -> None:
    """JSON goes out compact and unescaped, like the API's."""
    assert dumps({"a": "é", "b": [0.5, None]}) == '{"a":"é","b":[0.5,null]}'.encode()


def test_dumps_big_integers() -> None:
    """Integers past 64 bits are valid JSON a client may send; they still serialise."""
    assert dumps({"top_k": 10**30}) == b'{"top_k":1000000000000000000000000000000}'
