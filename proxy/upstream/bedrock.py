"""A Transport layer that makes a Messages API call on Bedrock Runtime, and answers as
the Messages API would: the translate arm above it does not know the difference.

    request   POST /v1/messages  ->  POST /model/{id}/invoke (or -with-response-stream),
              `model` into the path (an Anthropic name by BEDROCK_MODELS, any other as
              it is: a Bedrock model id, an inference profile or an ARN), `stream` into
              the operation, anthropic_version bedrock-2023-05-31; no Anthropic key
    answer    a 200 JSON as it is; an event stream as server-sent events (each chunk's
              JSON its data, an exception event an `error` event); an error as the
              Messages API's envelope and status (BEDROCK_ERRORS)

Below it, proxy/upstream/sigv4.py signs the converted request.
"""

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import orjson

from proxy.errors import BadUpstreamResponse, ErrorType, NotFound
from proxy.translate.bedrock import BEDROCK_VERSION
from proxy.translate.response import dumps, error_envelope
from proxy.translate.sse import encode
from proxy.upstream.answer import Answer, answer, closing
from proxy.upstream.transport import Request, Transport

# The current Claude models by their Anthropic names, as Bedrock names them.
BEDROCK_MODELS = {
    "claude-haiku-4-5": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "claude-sonnet-4-5": "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "claude-opus-4-1": "anthropic.claude-opus-4-1-20250805-v1:0",
    "claude-opus-4-5": "anthropic.claude-opus-4-5-20251101-v1:0",
}
# Bedrock's exception (x-amzn-errortype, or an event's :exception-type) -> what the
# Messages API answers for the same trouble.
BEDROCK_ERRORS: dict[str, tuple[int, ErrorType]] = {
    "ValidationException": (400, "invalid_request_error"),
    "AccessDeniedException": (403, "permission_error"),
    # The bridge's own credentials refused: as the Messages API refuses a bad key.
    "UnrecognizedClientException": (401, "authentication_error"),
    "InvalidSignatureException": (401, "authentication_error"),
    "ExpiredTokenException": (401, "authentication_error"),
    "MissingAuthenticationTokenException": (401, "authentication_error"),
    "ResourceNotFoundException": (404, "not_found_error"),
    "ThrottlingException": (429, "rate_limit_error"),
    "ServiceQuotaExceededException": (429, "rate_limit_error"),
    "ModelTimeoutException": (504, "timeout_error"),
    "ServiceUnavailableException": (529, "overloaded_error"),
    "ModelNotReadyException": (529, "overloaded_error"),
}
_INTERNAL: tuple[int, ErrorType] = (500, "api_error")
MAX_ERROR_BYTES = 64 * 1024
_DROPPED = ("model", "stream", "metadata")  # Bedrock refuses these in the body


def bedrock_error(name: str) -> tuple[int, ErrorType]:
    """`ValidationException:...` or `validationException` -> (status, error type)."""
    name = name.split(":", 1)[0]
    return BEDROCK_ERRORS.get(name[:1].upper() + name[1:], _INTERNAL)


class BedrockMessages:
    """The inner transport's attempt, made of a Messages call on Bedrock Runtime."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def open(self) -> None:
        self.inner.open()

    async def send(self, request: Request) -> Answer:
        base, _, target = request.url.rpartition("/v1/messages")
        if request.method != "POST" or target or not isinstance(request.content, bytes):
            raise NotFound("this upstream is Bedrock Runtime: it serves translated calls only")
        body: dict[str, Any] = orjson.loads(request.content)
        model, stream = str(body["model"]), bool(body.get("stream"))
        bedrock = {k: v for k, v in body.items() if k not in _DROPPED}
        bedrock["anthropic_version"] = BEDROCK_VERSION
        operation = "invoke-with-response-stream" if stream else "invoke"
        path = f"/model/{quote(BEDROCK_MODELS.get(model, model), safe=':')}/{operation}"
        accept = b"application/vnd.amazon.eventstream" if stream else b"application/json"
        headers = [(b"content-type", b"application/json"), (b"accept", accept)]
        sent = replace(request, url=base + path, headers=headers, content=dumps(bedrock))
        got = await self.inner.send(sent)
        request_id = got.headers.get("x-amzn-requestid", "").encode()
        if got.status_code != 200:
            return await _error(got, request_id)
        if not stream:
            whole = [(b"content-type", b"application/json"), (b"request-id", request_id)]
            return _over(got, answer(200, whole, got.body))
        events = [(b"content-type", b"text/event-stream"), (b"request-id", request_id)]
        return _over(got, answer(200, events, _events(got)))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _error(got: Answer, request_id: bytes) -> Answer:
    """A Bedrock error as the Messages API's: its status and envelope."""
    data = b""
    try:
        async for chunk in got.body:
            data += chunk
            if len(data) > MAX_ERROR_BYTES:
                break
    finally:
        await closing(got)
    try:
        message = str(orjson.loads(data).get("message") or orjson.loads(data).get("Message"))
    except (ValueError, AttributeError):
        message = data[:200].decode("utf-8", "replace") or "no body"
    status, error_type = bedrock_error(got.headers.get("x-amzn-errortype", ""))
    headers = [(b"content-type", b"application/json"), (b"request-id", request_id)]
    return answer(status, headers, dumps(error_envelope(error_type, f"Bedrock: {message}")))


def _over(got: Answer, made: Answer) -> Answer:
    """`made`, whose close also closes Bedrock's answer `got` (read or not)."""
    close = made.close

    async def both() -> None:
        try:
            await close()
        finally:
            await closing(got)

    made.close = both
    return made


async def _events(got: Answer) -> AsyncIterator[bytes]:
    """Bedrock's event stream as the Messages API's server-sent events."""
    from botocore.eventstream import EventStreamBuffer, ParserError  # loaded when needed

    buffer = EventStreamBuffer()
    async for chunk in got.body:
        buffer.add_data(chunk)
        out = []
        try:
            for message in buffer:
                out.append(_event(message.headers, message.payload))
        except ParserError as exc:
            raise BadUpstreamResponse(f"bad Bedrock event stream: {exc}") from None
        yield b"".join(out)


def _event(headers: dict[str, Any], payload: bytes) -> bytes:
    try:
        data = orjson.loads(payload)
        if headers.get(":message-type") == "event" and headers.get(":event-type") == "chunk":
            event = base64.b64decode(data["bytes"])
            return encode(event, str(orjson.loads(event).get("type", "message")))
        kind = str(headers.get(":exception-type") or headers.get(":error-code") or "")
        message = str(data.get("message") or data.get("Message") or kind)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadUpstreamResponse("bad Bedrock event") from None
    return encode(dumps(error_envelope(bedrock_error(kind)[1], f"Bedrock: {message}")), "error")
