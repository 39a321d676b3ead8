"""Bedrock's legacy Claude calls in the pure core: the body, the answers, the errors and
the event stream, read back with botocore's own decoder (CRCs checked) at every split."""

import base64
import json
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage

from proxy.errors import InvalidRequest
from proxy.translate import eventstream
from proxy.translate.bedrock import (
    BEDROCK_VERSION,
    BedrockStream,
    bedrock_error,
    error_body,
    legacy_body,
    whole,
)
from proxy.translate.sse import encode


def decoded(data: bytes, split: int | None = None) -> list[EventStreamMessage]:
    """The messages botocore reads from `data`, fed in two pieces at `split`."""
    buffer = EventStreamBuffer()
    pieces = [data] if split is None else [data[:split], data[split:]]
    messages = []
    for piece in pieces:
        buffer.add_data(piece)
        messages += list(buffer)
    return messages


def chunks(messages: list[EventStreamMessage]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        assert message.headers[":message-type"] == "event"
        assert message.headers[":event-type"] == "chunk"
        out.append(json.loads(base64.b64decode(json.loads(message.payload)["bytes"])))
    return out


def completion_event(text: str, stop_reason: str | None = None, stop: str | None = None) -> bytes:
    data: dict[str, str | None] = {"type": "completion", "id": "compl_1", "completion": text}
    data["model"] = "m"
    data |= {"stop_reason": stop_reason, "stop": stop, "log_id": "compl_1"}
    return encode(json.dumps(data).encode(), "completion")


def test_body_becomes_a_legacy_body() -> None:
    body = {"prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5}
    legacy = legacy_body({**body, "anthropic_version": BEDROCK_VERSION}, "m", stream=True)
    assert legacy == {**body, "model": "m", "stream": True}
    assert legacy_body({**body, "model": "x", "stream": True}, "m", stream=False) == {
        **body, "model": "m", "stream": False,
    }  # fmt: skip


def test_another_api_version_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="anthropic_version"):
        legacy_body({"anthropic_version": "2023-06-01"}, "m", stream=False)


def test_whole_answer_has_the_legacy_bedrock_fields() -> None:
    completion = {"type": "completion", "id": "compl_1", "completion": " hi", "model": "m"}
    completion |= {"stop_reason": "stop_sequence", "stop": "\n\nHuman:", "log_id": "compl_1"}
    assert json.loads(whole(completion)) == {
        "completion": " hi", "stop_reason": "stop_sequence", "stop": "\n\nHuman:",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error_type", "status", "name"),
    [
        ("invalid_request_error", 400, "ValidationException"),
        ("authentication_error", 403, "AccessDeniedException"),
        ("not_found_error", 404, "ResourceNotFoundException"),
        ("rate_limit_error", 429, "ThrottlingException"),
        ("timeout_error", 408, "ModelTimeoutException"),
        ("overloaded_error", 503, "ServiceUnavailableException"),
        ("api_error", 500, "InternalServerException"),
        ("something_new", 500, "InternalServerException"),
    ],
)
def test_errors_have_bedrock_statuses(error_type: str, status: int, name: str) -> None:
    error = bedrock_error(error_type)
    assert (error.status, error.name) == (status, name)
    assert json.loads(error_body("no")) == {"message": "no"}


def test_message_framing_is_read_back_by_botocore_at_every_split() -> None:
    data = eventstream.event("chunk", b'{"bytes":"e30="}') + eventstream.exception(
        "throttlingException", b'{"message":"slow down"}'
    )
    for split in range(len(data) + 1):
        messages = decoded(data, split)
        assert [m.headers[":message-type"] for m in messages] == ["event", "exception"]
        assert messages[1].headers[":exception-type"] == "throttlingException"
        assert messages[1].payload == b'{"message":"slow down"}'


def test_a_corrupted_byte_fails_botocores_crc() -> None:
    data = bytearray(eventstream.event("chunk", b'{"bytes":"e30="}'))
    data[-6] ^= 1
    with pytest.raises(ChecksumMismatch):
        decoded(bytes(data))


def test_stream_becomes_chunks_the_last_with_metrics() -> None:
    legacy = b"".join(
        [
            completion_event(" Hel"),
            encode(b'{"type": "ping"}', "ping"),
            completion_event("lo"),
            completion_event("", "stop_sequence", "\n\nHuman:"),
        ]
    )
    for split in range(len(legacy) + 1):
        stream = BedrockStream()
        out = stream.feed(legacy[:split]) + stream.feed(legacy[split:]) + stream.end(3, 2, 40, 9)
        got = chunks(decoded(out))
        assert [c["completion"] for c in got] == [" Hel", "lo", ""]
    assert got[0] == {"completion": " Hel", "stop_reason": None, "stop": None}
    assert got[-1]["stop_reason"] == "stop_sequence" and got[-1]["stop"] == "\n\nHuman:"
    assert got[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 3, "outputTokenCount": 2,
        "invocationLatency": 40, "firstByteLatency": 9,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("error_type", "member"),
    [
        ("overloaded_error", "serviceUnavailableException"),
        ("api_error", "modelStreamErrorException"),
    ],
)
def test_stream_error_becomes_an_exception_event_never_a_clean_end(
    error_type: str, member: str
) -> None:
    error = {"type": "error", "error": {"type": error_type, "message": "lost"}}
    legacy = completion_event(" Hel") + encode(json.dumps(error).encode(), "error")
    stream = BedrockStream()
    messages = decoded(
        stream.feed(legacy) + stream.feed(completion_event("x")) + stream.end(1, 1, 1, 1)
    )
    assert [m.headers[":message-type"] for m in messages] == ["event", "exception"]
    assert messages[1].headers[":exception-type"] == member
    payload = json.loads(messages[1].payload)
    assert payload["message"] == "lost"
    if member == "modelStreamErrorException":
        assert payload["originalStatusCode"] == 500


def test_a_cut_stream_has_no_last_chunk() -> None:
    stream = BedrockStream()
    assert chunks(decoded(stream.feed(completion_event(" Hel")))) == [
        {"completion": " Hel", "stop_reason": None, "stop": None}
    ]
    assert stream.end(None, None, 1, 1) == b""
