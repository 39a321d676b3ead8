"""The legacy prompt grammar: `[system]\\n\\nHuman: ...\\n\\nAssistant: ...[prefill]`.

Parsed into what the Messages API takes: a system prompt, alternating messages and,
when the prompt goes on after its last `\\n\\nAssistant:`, an assistant prefill.
Empty turns are dropped, Human as well as Assistant; a prompt with no Human text before
its first Assistant text is refused, naming its first empty Human turn.
"""

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from proxy.errors import InvalidRequest
from proxy.wire import Message

MUST_START = 'prompt must start with "\\n\\nHuman:" turn after an optional system prompt'
MUST_END = 'prompt must end with "\\n\\nAssistant:" turn'
MAX_MESSAGES = 10_000  # each costs ~250 bytes whatever its text

_REAL = re.compile(r"\n\n(Human|Assistant):")
# TypeScript SDK 0.61-0.137 define HUMAN_PROMPT with a literal backslash-n.
_LITERAL = re.compile(r"\\n\\n(Human|Assistant):")
_SPACE = re.compile(r"\s*")  # what str.strip() strips


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    messages: list[Message]
    prefill: str | None
    turns: int
    literal_markers: bool


def parse_prompt(prompt: str) -> Conversation:
    """Split a legacy prompt into system, messages and prefill; 400 on a bad prompt.
    Turn by turn: each turn's text is copied once, stripped (the prompt may be 30 MB)."""
    first = _SPACE.match(prompt).end()  # type: ignore[union-attr]  # \s* always matches
    bare = prompt.startswith("Human:", first)  # the old API took a first turn without "\n\n"
    literal = not bare and "\n\nHuman:" not in prompt and "\\n\\nHuman:" in prompt
    marker = _LITERAL if literal else _REAL

    system: str | None = None
    turns, role = 0, ""
    humans, first_empty_human = 0, 0  # numbered among Human turns, as the 400 names them
    messages: list[Message] = []
    merged: io.StringIO | None = None  # the last message's texts, once it has two or more
    for role, text in _turns(prompt, marker, first + len("Human:") if bare else None):
        if not role:
            system = text or None
            continue
        turns += 1
        if turns == 1 and role != "Human":
            raise InvalidRequest(MUST_START)
        if role == "Human":
            humans += 1
        if not text:  # empty turns of either role: frameworks write them (griptape 0.23)
            first_empty_human = first_empty_human or (humans if role == "Human" else 0)
            continue
        api_role: Literal["user", "assistant"] = "user" if role == "Human" else "assistant"
        if not messages and api_role == "assistant":
            # Assistant text before any Human text: Messages starts with the user.
            raise InvalidRequest(f"prompt: Human turn {first_empty_human} is empty")
        if messages and messages[-1]["role"] == api_role:
            # Written on: `+=` was quadratic, a list held an object per turn.
            if merged is None:
                merged = io.StringIO()
                merged.write(messages[-1]["content"])
            merged.write("\n\n")
            merged.write(text)
            continue
        if merged is not None:
            messages[-1]["content"], merged = merged.getvalue(), None
        if len(messages) == MAX_MESSAGES:
            raise InvalidRequest(
                f"prompt: more than {MAX_MESSAGES} turns (after merging neighbours of one role)"
            )
        messages.append({"role": api_role, "content": text})
    if not turns:
        raise InvalidRequest(MUST_START)
    if role != "Assistant":
        raise InvalidRequest(MUST_END)
    if not messages:  # every turn empty (the first one is a Human turn)
        raise InvalidRequest(f"prompt: Human turn {first_empty_human} is empty")
    if merged is not None:
        messages[-1]["content"] = merged.getvalue()
    last = messages[-1]
    return Conversation(
        system=system,
        messages=messages,
        prefill=last["content"] if last["role"] == "assistant" else None,
        turns=turns,
        literal_markers=literal,
    )


def _turns(prompt: str, marker: re.Pattern[str], bare: int | None) -> Iterator[tuple[str, str]]:
    """("", system text), then (role, text) of each turn, stripped; from `bare` on, if
    the prompt starts with a Human turn without its "\n\n"."""
    role, start = ("Human", bare) if bare is not None else ("", 0)
    for found in marker.finditer(prompt, start):
        yield role, _stripped(prompt, start, found.start())
        role, start = found[1], found.end()
    yield role, _stripped(prompt, start, len(prompt))


def _stripped(text: str, start: int, end: int) -> str:
    """text[start:end].strip(), without first copying what strip() drops at the start."""
    start = _SPACE.match(text, start, end).end()  # type: ignore[union-attr]
    return text[start:end].rstrip()
