"""A legacy `/v1/complete` body becomes a Messages body, plus what had to be adapted."""

from dataclasses import dataclass
from typing import Any, Literal

from proxy.config.models import Capabilities, ModelTable
from proxy.errors import InvalidRequest
from proxy.translate.prompt import Conversation, parse_prompt
from proxy.wire import MessagesRequest

LEGACY_FIELDS = frozenset(
    {
        "model", "prompt", "max_tokens_to_sample", "stop_sequences", "temperature",
        "top_k", "top_p", "metadata", "stream",
    }
)  # fmt: skip
# Apps send a handful (the SDKs' examples one or two); each whitespace-only one is
# scanned for in every piece of a stream.
MAX_STOP_SEQUENCES = 1_000
# What a translation may change in a call: the kinds of `Translation.adaptations`
# (docs/behaviour.md). The log, metrics and report all use this one list.
AdaptationKind = Literal[
    "capped_max_tokens",
    "local_stop",
    "dropped_empty_stop",
    "dropped_temperature",
    "dropped_top_k",
    "dropped_top_p",
    "dropped_field",
]


@dataclass(frozen=True, slots=True)
class Translation:
    body: MessagesRequest
    prompt: str
    conversation: Conversation
    legacy_model: str
    local_stops: tuple[str, ...]
    # Each entry is "kind" or "kind:detail" (`dropped_field:tags`); kinds: AdaptationKind.
    adaptations: tuple[str, ...]

    @property
    def stream(self) -> bool:
        return self.body.get("stream", False)


def translate_request(body: Any, models: ModelTable, target: str | None = None) -> Translation:
    """Validate a legacy body and build its Messages body; 400 with what to fix.
    `target` names the model to ask instead of the one the model table gives."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = _required(body, "model", str, "a string")
    prompt = _required(body, "prompt", str, "a string")
    max_tokens = _required(body, "max_tokens_to_sample", int, "an integer")
    if max_tokens < 1:
        raise InvalidRequest(f"max_tokens_to_sample: must be at least 1, got {max_tokens}")
    conversation = parse_prompt(prompt)

    adaptations = [f"dropped_field:{name}" for name in body if name not in LEGACY_FIELDS]
    target = target or models.resolve(model)
    caps = models.capabilities_of(target)
    if caps is not None and max_tokens > caps.max_output:
        adaptations.append(f"capped_max_tokens:{max_tokens}->{caps.max_output}")
        max_tokens = caps.max_output
    if caps is not None and not caps.prefill and conversation.prefill is not None:
        served = (
            f"model {model!r} is served by {target!r}, which"
            if model != target
            else (f"model {target!r}")
        )
        raise InvalidRequest(
            f"{served} does not accept an assistant "
            'prefill (text after the last "\\n\\nAssistant:"); end the prompt with '
            f'"\\n\\nAssistant:", or map {model!r} to a model that accepts prefill '
            "in the bridge's model table"
        )

    out: MessagesRequest = {
        "model": target,
        "messages": conversation.messages,
        "max_tokens": max_tokens,
    }
    if conversation.system is not None:
        out["system"] = conversation.system

    local_stops: list[str] = []
    if "stop_sequences" in body:
        stops = body["stop_sequences"]
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("stop_sequences: must be a list of strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(
                f"stop_sequences: at most {MAX_STOP_SEQUENCES} are accepted, got {len(stops)}"
            )
        for stop in stops:
            _unicode("stop_sequences", stop)
        forwarded = []
        for stop in stops:
            if stop.strip():
                forwarded.append(stop)
            elif stop:
                local_stops.append(stop)
            else:
                adaptations.append("dropped_empty_stop")
        if local_stops:
            adaptations.append("local_stop")
        if forwarded or not stops:
            out["stop_sequences"] = forwarded

    _copy_samplers(body, out)
    if caps is not None:
        adaptations += _fit_samplers(out, caps)

    if "metadata" in body:
        metadata = body["metadata"]
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata: must be an object")
        if "user_id" in metadata:
            user_id = metadata["user_id"]
            if user_id is not None and not isinstance(user_id, str):
                raise InvalidRequest("metadata.user_id: must be a string or null")
            if user_id is not None:
                _unicode("metadata.user_id", user_id)
            out["metadata"] = {"user_id": user_id}
        adaptations += [f"dropped_field:metadata.{k}" for k in metadata if k != "user_id"]

    if "stream" in body:
        stream = body["stream"]
        if not isinstance(stream, bool):
            raise InvalidRequest(f"stream: must be true or false, got {stream!r}")
        if stream:
            out["stream"] = True

    return Translation(
        body=out,
        prompt=prompt,
        conversation=conversation,
        legacy_model=model,
        local_stops=tuple(local_stops),
        adaptations=tuple(adaptations),
    )


def _required(body: dict[str, Any], name: str, kind: type, described: str) -> Any:
    if name not in body:
        raise InvalidRequest(f"{name}: field required")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequest(f"{name}: must be {described}, got {_json_type(value)}")
    return _unicode(name, value) if isinstance(value, str) else value


def _unicode(name: str, text: str) -> str:
    """JSON may escape half a UTF-16 pair (a string cut inside an emoji); nothing can send it."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{name}: contains an unpaired surrogate (\\u{ord(text[exc.start]):x}) at index "
            f"{exc.start}; send valid Unicode"
        ) from None
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(type(value), "an array" if isinstance(value, list) else "an object")


def _sampler(body: dict[str, Any], name: str, high: float, *, integer: bool = False) -> Any:
    """A sampler value in [0, high]; None when absent or, for top_k/top_p, the legacy "off" -1."""
    if name not in body:
        return None
    value = body[name]
    kind = "an integer" if integer else "a number"
    if not isinstance(value, int if integer else int | float) or isinstance(value, bool):
        raise InvalidRequest(f"{name}: must be {kind}, got {_json_type(value)}")
    off = name != "temperature"
    if off and value == -1:
        return None
    if not 0 <= value <= high:
        bounds = "at least 0" if high == float("inf") else f"between 0 and {high:g}"
        hint = " (or -1 for off)" if off else ""
        raise InvalidRequest(f"{name}: must be {bounds}{hint}, got {value}")
    return value


def _copy_samplers(body: dict[str, Any], out: MessagesRequest) -> None:
    temperature = _sampler(body, "temperature", 1)
    top_k = _sampler(body, "top_k", float("inf"), integer=True)
    top_p = _sampler(body, "top_p", 1)
    if temperature is not None:
        out["temperature"] = temperature
    if top_k is not None:
        out["top_k"] = top_k
    if top_p is not None:
        out["top_p"] = top_p


def _fit_samplers(out: MessagesRequest, caps: Capabilities) -> list[str]:
    """Drop the samplers the target model would reject; say which."""
    drop = set()
    if caps.fixed_sampling:
        if out.get("temperature", 1.0) != 1.0:
            drop.add("temperature")
        if "top_k" in out:
            drop.add("top_k")
        if out.get("top_p", 1.0) < 0.99:
            drop.add("top_p")
    if caps.one_sampler and "temperature" in out and "top_p" in out and "temperature" not in drop:
        drop.add("top_p")
    for name in sorted(drop):
        del out[name]  # type: ignore[misc]
    return [f"dropped_{name}" for name in sorted(drop)]
