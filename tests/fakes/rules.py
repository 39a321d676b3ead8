"""What the real Messages API refuses, for the strict fake upstream: wrong
`anthropic-version`, unknown fields, trailing-whitespace prefill, whitespace stop
sequences, sampler combinations a model does not take, prefill on models without it,
`max_tokens` over the model's cap. Strict, so that a translation bug in the bridge cannot
hide behind a lenient fake."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


class Rejected(Exception):
    """A request the real API would refuse, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    """The API's error envelope for `status`."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


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


def check_headers(headers: Mapping[str, str], *, key: bool = True) -> None:
    """`headers` with lower-cased names; `key`: an API key or a bearer token is required."""
    auth = headers.get("authorization", "")
    if key and not headers.get("x-api-key") and not auth.startswith("Bearer "):
        raise Rejected(401, "x-api-key header is required")
    version = headers.get("anthropic-version")
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
