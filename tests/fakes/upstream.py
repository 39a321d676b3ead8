"""A strict, deterministic fake of Anthropic's Messages API (`POST /v1/messages`).

Strict: it rejects what the real API rejects (wrong `anthropic-version`, unknown fields,
trailing-whitespace prefill, whitespace stop sequences, sampler combinations a model does
not take, prefill on models without it, `max_tokens` over the model's cap), so a
translation bug in the bridge cannot hide behind a lenient fake.

Deterministic: the reply is `"echo: " + <last user text>`, cut at the first stop sequence
or after `max_tokens` words (tokens are words here). The last user text can script it:

    SAY <text>        reply exactly <text>
    FAIL <status>     answer <status> with the error envelope, `retry-after: 1` and
                      `x-should-retry: false`
    MIDSTREAM_ERROR   (streams) send an `overloaded_error` event after two text deltas

Every request is recorded in `app.state.requests` as a `Received`.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.sse import event

VERSION = "2023-06-01"
FIELDS = {
    "model", "messages", "system", "max_tokens", "stop_sequences",
    "temperature", "top_k", "top_p", "metadata", "stream",
}  # fmt: skip
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Model:
    """What a model accepts: its output cap and its sampling and prefill limits."""

    max_tokens: int
    one_sampler: bool = True  # rejects temperature together with top_p
    fixed_sampling: bool = False  # temperature 1.0 only, no top_k, top_p >= 0.99
    prefill: bool = True


GEN_4_5 = Model(64000)
GEN_4_6 = Model(128000, prefill=False)
LATER = Model(128000, fixed_sampling=True, prefill=False)
MODELS = {  # name prefix -> limits; dated snapshots match their prefix
    "claude-sonnet-4-5": GEN_4_5,
    "claude-haiku-4-5": GEN_4_5,
    "claude-opus-4-5": GEN_4_5,
    "claude-opus-4-1": Model(32000),
    "claude-opus-4-6": GEN_4_6,
    "claude-sonnet-4-6": GEN_4_6,
    "claude-opus-4-7": LATER,
    "claude-opus-4-8": LATER,
    "claude-mythos-preview": LATER,
    "claude-opus-5": LATER,
    "claude-sonnet-5": LATER,
    "claude-fable-5": LATER,
    "claude-mythos-5": LATER,
}


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw bytes when it was not JSON


class Rejected(Exception):
    """A request the real API would refuse, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status, headers={"request-id": "req_fake", **(headers or {})})


def find_model(name: object) -> Model:
    for prefix, model in MODELS.items():
        if isinstance(name, str) and (name == prefix or name.startswith(prefix + "-")):
            return model
    raise Rejected(404, f"model: {name}")


def text_of(content: object) -> str:
    """The text of a message's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in content
    ):
        return "".join(b["text"] for b in content)
    raise Rejected(400, "content: must be a string or a list of text blocks")


def check_headers(request: Request) -> None:
    auth = request.headers.get("authorization", "")
    if not request.headers.get("x-api-key") and not auth.startswith("Bearer "):
        raise Rejected(401, "x-api-key header is required")
    version = request.headers.get("anthropic-version")
    if version is None:
        raise Rejected(400, "anthropic-version: header is required")
    if version != VERSION:
        raise Rejected(400, f"anthropic-version: {version!r} is not a valid version")


def check_body(body: object) -> None:
    """Validate a Messages request body as the real API would."""
    if not isinstance(body, dict):
        raise Rejected(400, "body: Input should be an object")
    for field in body:
        if field not in FIELDS:
            raise Rejected(400, f"{field}: Extra inputs are not permitted")
    for field in ("model", "messages", "max_tokens"):
        if field not in body:
            raise Rejected(400, f"{field}: Field required")
    model = find_model(body["model"])
    check_max_tokens(body["max_tokens"], body["model"], model)
    check_messages(body["messages"], model)
    if not isinstance(body.get("system", ""), str | list):
        raise Rejected(400, "system: Input should be a valid string")
    check_stops(body.get("stop_sequences", []))
    check_sampling(body, model)
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise Rejected(400, "metadata: only user_id is permitted")
    if not isinstance(body.get("stream", False), bool):
        raise Rejected(400, "stream: Input should be a valid boolean")


def check_max_tokens(value: object, name: str, model: Model) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Rejected(400, "max_tokens: Input should be an integer greater than or equal to 1")
    if value > model.max_tokens:
        raise Rejected(
            400,
            f"max_tokens: {value} > {model.max_tokens}, which is the maximum allowed "
            f"number of output tokens for {name}",
        )


def check_messages(messages: object, model: Model) -> None:
    if not isinstance(messages, list) or not messages:
        raise Rejected(400, "messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise Rejected(400, f"messages.{i}: must have exactly role and content")
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise Rejected(
                400,
                f"messages.{i}.role: roles must alternate between user and assistant, "
                "starting with user",
            )
        text = text_of(message["content"])
        final_assistant = i == len(messages) - 1 and expected == "assistant"
        if not text and not final_assistant:
            raise Rejected(
                400,
                f"messages.{i}: all messages must have non-empty content except for "
                "the optional final assistant message",
            )
        if final_assistant and text != text.rstrip():
            raise Rejected(400, "final assistant content cannot end with trailing whitespace")
    if messages[-1]["role"] == "assistant" and not model.prefill:
        raise Rejected(
            400,
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message.",
        )


def check_stops(stops: object) -> None:
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise Rejected(400, "stop_sequences: Input should be a valid list of strings")
    for stop in stops:
        if not stop.strip():
            raise Rejected(400, "stop_sequences: each stop sequence must contain non-whitespace")


def check_sampling(body: dict[str, Any], model: Model) -> None:
    for field, top in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(field, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= top:
            raise Rejected(400, f"{field}: Input should be a number between 0 and {top}")
    if "top_k" in body and (not isinstance(body["top_k"], int) or body["top_k"] < 0):
        raise Rejected(400, "top_k: Input should be a non-negative integer")
    if model.one_sampler and "temperature" in body and "top_p" in body:
        raise Rejected(
            400,
            "`temperature` and `top_p` cannot both be specified for this model. "
            "Please use only one.",
        )
    if model.fixed_sampling:
        if body.get("temperature", 1.0) != 1.0:
            raise Rejected(400, "temperature: only 1.0 is supported for this model")
        if "top_k" in body:
            raise Rejected(400, "top_k: is not supported for this model")
        if body.get("top_p", 1.0) < 0.99:
            raise Rejected(400, "top_p: must be at least 0.99 for this model")


def words(text: str) -> list[str]:
    """Split text into word tokens, each keeping the whitespace before it (and the last one
    any whitespace after it), so that joining them gives the text back."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or ([text] if text else [])


def reply(body: dict[str, Any], prompt: str) -> tuple[list[str], str, str | None]:
    """The reply's tokens, its stop_reason and the matched stop sequence."""
    text = prompt[4:] if prompt.startswith("SAY ") else "echo: " + prompt
    matches = [(text.find(s), s) for s in body.get("stop_sequences", []) if s in text]
    stop = min(matches)[1] if matches else None
    tokens = words(text[: text.find(stop)] if stop else text)
    if len(tokens) > body["max_tokens"]:
        return tokens[: body["max_tokens"]], "max_tokens", None
    return tokens, ("stop_sequence" if stop else "end_turn"), stop


async def events(message: dict[str, Any], tokens: list[str], fail: bool) -> AsyncIterator[bytes]:
    """The Messages stream for `message`, one event per chunk."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    script: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
    ]
    for i, token in enumerate(tokens):
        if fail and i == 2:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            script.append(("error", {"error": error}))
            break
        delta = {"type": "text_delta", "text": token}
        script.append(("content_block_delta", {"index": 0, "delta": delta}))
    else:
        stop = {k: message[k] for k in ("stop_reason", "stop_sequence")}
        usage = {"output_tokens": message["usage"]["output_tokens"]}
        script += [
            ("content_block_stop", {"index": 0}),
            ("message_delta", {"delta": stop, "usage": usage}),
            ("message_stop", {}),
        ]
    for name, data in script:
        yield event(name, **data)
        await asyncio.sleep(0.002)  # separate chunks on the wire, as a real stream arrives


async def endpoint(request: Request) -> Response:
    """Record the request; answer POST /v1/messages, 404 anything else."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw
    requests: list[Received] = request.app.state.requests
    requests.append(Received(request.method, request.url.path, dict(request.headers), body))
    if (request.method, request.url.path) != ("POST", "/v1/messages"):
        return error_response(404, f"Not found: {request.method} {request.url.path}")
    try:
        check_headers(request)
        check_body(body)
    except Rejected as e:
        return error_response(e.status, e.message)
    prompt = text_of([m for m in body["messages"] if m["role"] == "user"][-1]["content"])
    if match := re.match(r"FAIL (\d{3})", prompt):
        status = int(match[1])
        headers = {"retry-after": "1", "x-should-retry": "false"}
        return error_response(status, f"scripted failure {status}", headers)
    tokens, stop_reason, stop_sequence = reply(body, prompt)
    sent = [body.get("system", "")] + [text_of(m["content"]) for m in body["messages"]]
    message = {
        "id": f"msg_fake{len(requests):06d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": "".join(tokens)}],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": sum(len(words(t)) for t in sent if isinstance(t, str)),
            "output_tokens": len(tokens),
        },
    }
    headers = {
        "request-id": f"req_fake{len(requests):06d}",
        "anthropic-ratelimit-requests-remaining": "999",
    }
    if body.get("stream"):
        fail = prompt.startswith("MIDSTREAM_ERROR")
        stream = events(message, tokens, fail)
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
    return JSONResponse(message, headers=headers)


def create_fake_upstream() -> Starlette:
    """A fresh fake Messages API with an empty `app.state.requests`."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
    app.state.requests = []
    return app
