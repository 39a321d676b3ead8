"""The JSON both APIs speak, as TypedDicts. Optional keys are absent, not null."""

from typing import Any, Literal, NotRequired, TypedDict


class LegacyMetadata(TypedDict, total=False):
    user_id: str | None


class LegacyRequest(TypedDict):
    model: str
    prompt: str
    max_tokens_to_sample: int
    stop_sequences: NotRequired[list[str]]
    temperature: NotRequired[float]
    top_k: NotRequired[int]
    top_p: NotRequired[float]
    metadata: NotRequired[LegacyMetadata]
    stream: NotRequired[bool]


class Completion(TypedDict):
    """A legacy completion body, or one event of a legacy stream."""

    type: Literal["completion"]
    id: str
    completion: str
    stop_reason: Literal["stop_sequence", "max_tokens"] | None
    model: str
    stop: str | None
    log_id: str
    truncated: NotRequired[bool]
    exception: NotRequired[None]


class Message(TypedDict):
    role: Literal["user", "assistant"]
    content: str


class MessagesRequest(TypedDict):
    model: str
    messages: list[Message]
    max_tokens: int
    system: NotRequired[str]
    stop_sequences: NotRequired[list[str]]
    temperature: NotRequired[float]
    top_k: NotRequired[int]
    top_p: NotRequired[float]
    metadata: NotRequired[LegacyMetadata]
    stream: NotRequired[bool]


class Usage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int


class MessagesResponse(TypedDict):
    """The parts of a Messages response the bridge reads."""

    id: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage


class ErrorDetail(TypedDict):
    type: str
    message: str


class ErrorEnvelope(TypedDict):
    type: Literal["error"]
    error: ErrorDetail
