"""Request bodies for tests: a valid legacy body, with overrides."""

from typing import Any

PROMPT = "\n\nHuman: Why is the sky blue?\n\nAssistant:"


def legacy_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-2.1", "prompt": PROMPT, "max_tokens_to_sample": 300}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def message(text: str = "Light scatters blue.", **overrides: Any) -> dict[str, Any]:
    """A Messages API response body."""
    body: dict[str, Any] = {
        "id": "msg_01XYZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }
    body.update(overrides)
    return body


# A [[routes]] table: 30 % of callers (by key) to the new API, the rest passed through.
CANARY_ROUTE: dict[str, Any] = {
    "name": "canary",
    "mode": "canary",
    "percent": 30,
    "primary": {"mode": "passthrough", "upstream_url": "http://legacy"},
    "secondary": {"mode": "translate", "upstream_url": "http://new"},
}
