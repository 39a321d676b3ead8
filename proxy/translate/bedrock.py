"""Bedrock's legacy Claude calls (`invoke` and `invoke-with-response-stream` with a Text
Completions body) as the legacy API's, and the answers back in Bedrock's shapes.

    body       the Bedrock body (the model is in the path, the stream in the operation)
               becomes a `/v1/complete` body, which the one translation then takes
    whole      a legacy completion becomes `{"completion", "stop_reason", "stop"}`
    stream     the legacy stream's events become event-stream `chunk` events, each the
               base64 of a legacy chunk's JSON; the last carries Bedrock's
               `amazon-bedrock-invocationMetrics`; an error, an exception event
    errors     an Anthropic error type becomes Bedrock's status and exception name
"""

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.errors import InvalidRequest
from proxy.translate import eventstream
from proxy.translate.response import dumps
from proxy.translate.sse import SSEDecoder

BEDROCK_VERSION = "bedrock-2023-05-31"
OPERATIONS = {"invoke": False, "invoke-with-response-stream": True}  # -> stream


@dataclass(frozen=True, slots=True)
class BedrockError:
    status: int
    name: str  # x-amzn-errortype, and the client's exception class
    member: str  # the exception event's `:exception-type` in a stream


# Anthropic error type -> Bedrock's (botocore's service model for bedrock-runtime).
_ERRORS = {
    "invalid_request_error": BedrockError(400, "ValidationException", "validationException"),
    "request_too_large": BedrockError(400, "ValidationException", "validationException"),
    "authentication_error": BedrockError(403, "AccessDeniedException", "validationException"),
    "permission_error": BedrockError(403, "AccessDeniedException", "validationException"),
    "not_found_error": BedrockError(404, "ResourceNotFoundException", "validationException"),
    "rate_limit_error": BedrockError(429, "ThrottlingException", "throttlingException"),
    "timeout_error": BedrockError(408, "ModelTimeoutException", "modelTimeoutException"),
    "overloaded_error": BedrockError(
        503, "ServiceUnavailableException", "serviceUnavailableException"
    ),
}
_INTERNAL = BedrockError(500, "InternalServerException", "modelStreamErrorException")


def bedrock_error(error_type: str) -> BedrockError:
    """Bedrock's status and exception for an Anthropic error type (others: internal)."""
    return _ERRORS.get(error_type, _INTERNAL)


def error_body(message: str) -> bytes:
    return dumps({"message": message})


def legacy_body(body: dict[str, Any], model_id: str, *, stream: bool) -> dict[str, Any]:
    """The `/v1/complete` body of a Bedrock legacy call (400 for another API version)."""
    version = body.get("anthropic_version", BEDROCK_VERSION)
    if version != BEDROCK_VERSION:
        raise InvalidRequest(f"anthropic_version: must be {BEDROCK_VERSION!r}, got {version!r}")
    legacy = {k: v for k, v in body.items() if k not in ("anthropic_version", "model", "stream")}
    return {**legacy, "model": model_id, "stream": stream}


def whole(completion: Mapping[str, Any]) -> bytes:
    """A legacy completion as Bedrock answers one."""
    return dumps(_chunk(completion))


def _chunk(completion: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "completion": completion["completion"],
        "stop_reason": completion["stop_reason"],
        "stop": completion["stop"],
    }


def chunk(data: dict[str, Any]) -> bytes:
    """An event-stream `chunk` event carrying `data` as Bedrock does: base64 JSON."""
    return eventstream.event("chunk", dumps({"bytes": base64.b64encode(dumps(data)).decode()}))


def exception(error_type: str, message: str) -> bytes:
    error = bedrock_error(error_type)
    payload: dict[str, Any] = {"message": message}
    if error.member == "modelStreamErrorException":
        payload |= {"originalStatusCode": error.status, "originalMessage": message}
    return eventstream.exception(error.member, dumps(payload))


class BedrockStream:
    """The legacy stream (v2 events, as the translation writes them) in, Bedrock's event
    stream out. The last chunk waits for `end`, which adds the invocation metrics."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.last: dict[str, Any] | None = None  # the last chunk, until `end`
        self.failed = False

    def feed(self, data: bytes) -> bytes:
        out = []
        for sse in self._decoder.decode(data):
            if self.failed or sse.event not in ("completion", "error"):
                continue  # pings
            event = orjson.loads(sse.data)
            if sse.event == "error":
                self.failed = True
                error = event["error"]
                out.append(exception(error["type"], error["message"]))
            elif event["stop_reason"] is None:
                out.append(chunk(_chunk(event)))
            else:
                self.last = _chunk(event)
        return b"".join(out)

    def end(
        self, input_tokens: int | None, output_tokens: int | None, latency_ms: int, first_ms: int
    ) -> bytes:
        """The last chunk, with its metrics (nothing if the stream failed or was cut)."""
        if self.failed or self.last is None:
            return b""
        metrics = {
            "inputTokenCount": input_tokens or 0,
            "outputTokenCount": output_tokens or 0,
            "invocationLatency": latency_ms,
            "firstByteLatency": first_ms,
        }
        return chunk({**self.last, "amazon-bedrock-invocationMetrics": metrics})
