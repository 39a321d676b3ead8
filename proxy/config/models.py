"""The model table: legacy names mapped to current models, and what each model accepts."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import translate


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_output: int
    prefill: bool = True
    one_sampler: bool = False  # takes temperature or top_p, not both
    fixed_sampling: bool = False  # temperature 1.0 only, no top_k, top_p >= 0.99


_FOUR_FIVE = Capabilities(max_output=64_000, one_sampler=True)
_FOUR_SIX = Capabilities(max_output=128_000, prefill=False, one_sampler=True)
_LATER = Capabilities(max_output=128_000, prefill=False, one_sampler=True, fixed_sampling=True)

DEFAULT_CAPABILITIES: Mapping[str, Capabilities] = {
    "claude-opus-4-1": Capabilities(max_output=32_000, one_sampler=True),
    "claude-opus-4-1-20250805": Capabilities(max_output=32_000, one_sampler=True),
    "claude-sonnet-4-5": _FOUR_FIVE,
    "claude-sonnet-4-5-20250929": _FOUR_FIVE,
    "claude-haiku-4-5": _FOUR_FIVE,
    "claude-haiku-4-5-20251001": _FOUR_FIVE,
    "claude-opus-4-5": _FOUR_FIVE,
    "claude-opus-4-5-20251101": _FOUR_FIVE,
    "claude-opus-4-6": _FOUR_SIX,
    "claude-sonnet-4-6": _FOUR_SIX,
    "claude-mythos-preview": _LATER,
    "claude-opus-4-7": _LATER,
    "claude-opus-4-8": _LATER,
    "claude-opus-5": _LATER,
    "claude-sonnet-5": _LATER,
    "claude-fable-5": _LATER,
    "claude-mythos-5": _LATER,
}

# First match wins. Every name the legacy endpoint served, and the retired Claude 3
# names, go to a current model that accepts all a legacy prompt can carry (prefill too).
DEFAULT_ALIASES: tuple[tuple[str, str], ...] = (
    # Bedrock's legacy model ids (docs/bedrock.md).
    ("anthropic.claude-instant-*", "claude-haiku-4-5"),
    ("anthropic.claude-v*", "claude-sonnet-4-5"),
    ("claude-instant-*", "claude-haiku-4-5"),
    ("claude-v1*", "claude-sonnet-4-5"),
    ("claude-1*", "claude-sonnet-4-5"),
    ("claude-2*", "claude-sonnet-4-5"),
    ("claude-3-haiku*", "claude-haiku-4-5"),
    ("claude-3-5-haiku*", "claude-haiku-4-5"),
    ("claude-3-*", "claude-sonnet-4-5"),
)


@dataclass(frozen=True, slots=True)
class ModelTable:
    aliases: tuple[tuple[str, str], ...] = DEFAULT_ALIASES
    capabilities: Mapping[str, Capabilities] = field(
        default_factory=lambda: dict(DEFAULT_CAPABILITIES)
    )

    # The aliases' globs as one pattern, a named group each: one match finds the first
    # alias a name matches (fnmatch, glob by glob, was a call each).
    _globs: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        globs = (f"(?P<a{i}>{translate(glob)})" for i, (glob, _) in enumerate(self.aliases))
        object.__setattr__(self, "_globs", re.compile("|".join(globs) or "(?!)"))

    def resolve(self, name: str) -> str:
        """The model the upstream is asked for (the first alias whose glob matches the
        name, case and all); names with no alias go through as they are."""
        match = self._globs.match(name)
        if match is None or match.lastgroup is None:
            return name
        return self.aliases[int(match.lastgroup[1:])][1]

    def capabilities_of(self, model: str) -> Capabilities | None:
        """What an upstream model accepts; None for a model the table does not know."""
        return self.capabilities.get(model)
