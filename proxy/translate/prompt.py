"""The legacy prompt grammar: `[system]\\n\\nHuman: ...\\n\\nAssistant: ...[prefill]`.

Parsed into what the Messages API takes: a system prompt, alternating messages and,
when the prompt goes on after its last `\\n\\nAssistant:`, an assistant prefill.
Empty turns are dropped, Human as well as Assistant; only a prompt without any Human
text is refused.
"""

import re
from dataclasses import dataclass
from typing import Literal

from proxy.errors import InvalidRequest
from proxy.wire import Message

MUST_START = 'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
MUST_END = 'prompt must end with "\\n\\nAssistant:" turn'

_REAL = re.compile(r"\n\n(Human|Assistant):")
# TypeScript SDK 0.61-0.137 define HUMAN_PROMPT with a literal backslash-n.
_LITERAL = re.compile(r"\\n\\n(Human|Assistant):")


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    messages: list[Message]
    prefill: str | None
    turns: int
    literal_markers: bool


def parse_prompt(prompt: str) -> Conversation:
    """Split a legacy prompt into system, messages and prefill; 400 on a bad prompt."""
    start = prompt.lstrip()
    if start.startswith("Human:"):  # the old API accepted a first turn without "\n\n"
        prompt = "\n\n" + start
    literal = "\n\nHuman:" not in prompt and "\\n\\nHuman:" in prompt
    marker = _LITERAL if literal else _REAL

    head, *rest = marker.split(prompt)
    turns = list(zip(rest[0::2], (text.strip() for text in rest[1::2]), strict=True))
    if not turns or turns[0][0] != "Human":
        raise InvalidRequest(MUST_START)
    if turns[-1][0] != "Assistant":
        raise InvalidRequest(MUST_END)
    if not any(text for role, text in turns if role == "Human"):
        raise InvalidRequest("prompt: Human turn 1 is empty")  # the first of all-empty ones

    messages: list[Message] = []
    merged: list[str] | None = None  # the last message's texts, once it has two or more
    for role, text in turns:
        if not text:  # empty turns of either role: frameworks write them (griptape 0.23)
            continue
        api_role: Literal["user", "assistant"] = "user" if role == "Human" else "assistant"
        if messages and messages[-1]["role"] == api_role:
            merged = merged or [messages[-1]["content"]]
            merged.append(text)  # joined once at the end of the run: `+=` was quadratic
            continue
        if merged:
            messages[-1]["content"], merged = "\n\n".join(merged), None
        messages.append({"role": api_role, "content": text})
    if merged:
        messages[-1]["content"] = "\n\n".join(merged)
    last = messages[-1]
    return Conversation(
        system=head.strip() or None,
        messages=messages,
        prefill=last["content"] if last["role"] == "assistant" else None,
        turns=len(turns),
        literal_markers=literal,
    )
