import time

import pytest

from proxy.errors import InvalidRequest
from proxy.translate.prompt import MAX_MESSAGES, MUST_END, MUST_START, parse_prompt


def test_single_turn() -> None:
    """A plain Human/Assistant prompt becomes one user message, turn text stripped."""
    conv = parse_prompt("\n\nHuman: Hello, world!\n\nAssistant:")
    assert conv.messages == [{"role": "user", "content": "Hello, world!"}]
    assert conv.system is None
    assert conv.prefill is None
    assert conv.turns == 2


def test_system_preamble() -> None:
    """Text before the first Human turn is the system prompt."""
    conv = parse_prompt("You are terse.\n\nHuman: hi\n\nAssistant:")
    assert conv.system == "You are terse."
    assert conv.messages == [{"role": "user", "content": "hi"}]


def test_prefill_is_the_final_assistant_text_without_trailing_whitespace() -> None:
    """Text after the last Assistant marker is a prefill, trailing whitespace removed."""
    conv = parse_prompt("\n\nHuman: JSON please\n\nAssistant: {  \n")
    assert conv.prefill == "{"
    assert conv.messages[-1] == {"role": "assistant", "content": "{"}


def test_multi_turn_conversation_alternates() -> None:
    """A conversation keeps its turns in order."""
    conv = parse_prompt("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:")
    assert conv.messages == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert conv.turns == 4


def test_consecutive_same_role_turns_are_merged() -> None:
    """Two Human turns in a row join with a blank line."""
    conv = parse_prompt("\n\nHuman: first\n\nHuman: second\n\nAssistant:")
    assert conv.messages == [{"role": "user", "content": "first\n\nsecond"}]


def test_runs_of_each_role_merge_in_place() -> None:
    """Every run of same-role turns becomes one message, wherever the run is."""
    conv = parse_prompt(
        "\n\nHuman: a\n\nHuman: b\n\nAssistant: c\n\nAssistant: d\n\nHuman: e\n\nAssistant:"
    )
    assert conv.messages == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd"},
        {"role": "user", "content": "e"},
    ]


def test_merging_a_long_run_takes_linear_time() -> None:
    """Regression (found fuzzing hostile input): merging grew the message with `+=`,
    quadratic in the run, so 400,000 Human turns in a row (a 4 MB prompt, well under the
    body limit) held the event loop for ~14 s; it now takes well under a second."""
    started = time.perf_counter()
    conv = parse_prompt("\n\nHuman: a" * 400_000 + "\n\nAssistant:")
    assert time.perf_counter() - started < 5
    assert conv.messages == [{"role": "user", "content": "\n\n".join(["a"] * 400_000)}]


def test_empty_intermediate_assistant_turn_is_dropped_and_humans_merge() -> None:
    """An empty Assistant turn mid-prompt has no Messages form; its neighbours merge."""
    conv = parse_prompt("\n\nHuman: a\n\nAssistant:\n\nHuman: b\n\nAssistant:")
    assert conv.messages == [{"role": "user", "content": "a\n\nb"}]


def test_empty_human_turns_are_dropped_too() -> None:
    """griptape 0.23 writes an empty system text as an empty first Human turn; the old API
    answered such prompts, so empty Human turns are dropped like empty Assistant ones."""
    conv = parse_prompt("\n\nHuman: \n\nAssistant:\n\nHuman: Hello there\n\nAssistant:")
    assert conv.messages == [{"role": "user", "content": "Hello there"}]
    assert conv.turns == 4 and conv.prefill is None


def test_an_empty_human_turn_mid_prompt_merges_its_assistant_neighbours() -> None:
    """Dropping an empty Human turn joins the Assistant turns around it, then the prefill."""
    conv = parse_prompt("\n\nHuman: a\n\nAssistant: b\n\nHuman:\n\nAssistant: c")
    assert conv.messages == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b\n\nc"},
    ]
    assert conv.prefill == "b\n\nc"


@pytest.mark.parametrize(
    ("prompt", "empty"),
    [
        ("\n\nHuman:\n\nAssistant: Hi!\n\nHuman: x\n\nAssistant:", 1),
        ("\n\nHuman: \n\nAssistant:\n\nHuman:\n\nAssistant: Hi\n\nHuman: x\n\nAssistant:", 1),
        ("sys\n\nHuman:\n\nHuman:\n\nAssistant: Hi\n\nHuman: x\n\nAssistant:", 1),
    ],
)
def test_assistant_text_before_any_human_text_is_a_400_naming_the_empty_turn(
    prompt: str, empty: int
) -> None:
    """Messages starts with the user: Assistant text whose Human turns were all empty
    cannot be sent, and nothing is invented or dropped to make it fit; the 400 names the
    first empty Human turn, as the old API's own wording for an empty turn did."""
    with pytest.raises(InvalidRequest, match=f"^prompt: Human turn {empty} is empty$"):
        parse_prompt(prompt)


def test_assistant_turn_before_an_empty_last_one_is_a_prefill() -> None:
    """When the conversation ends on an assistant message, Messages continues it."""
    conv = parse_prompt("\n\nHuman: a\n\nAssistant: b\n\nAssistant:")
    assert conv.prefill == "b"


def test_leading_human_without_newlines_is_accepted() -> None:
    """The old API accepted a first turn written `Human:` with no blank line before it."""
    conv = parse_prompt("Human: hi\n\nAssistant:")
    assert conv.messages == [{"role": "user", "content": "hi"}]
    assert conv.system is None


def test_trailing_spaces_are_ignored() -> None:
    """The old API removed trailing spaces, so `Assistant: ` still ends the prompt."""
    assert parse_prompt("\n\nHuman: hi\n\nAssistant: ").prefill is None


def test_literal_backslash_n_markers() -> None:
    """TypeScript 0.61+ HUMAN_PROMPT is a literal backslash-n form; it is read as markers."""
    conv = parse_prompt("\\n\\nHuman: hi\\n\\nAssistant:")
    assert conv.literal_markers
    assert conv.messages == [{"role": "user", "content": "hi"}]


def test_literal_markers_ignored_when_real_markers_exist() -> None:
    """With a real marker present, backslash-n text is just text."""
    conv = parse_prompt("\n\nHuman: say \\n\\nAssistant: literally\n\nAssistant:")
    assert not conv.literal_markers
    assert conv.messages == [{"role": "user", "content": "say \\n\\nAssistant: literally"}]


def test_leading_bare_human_is_a_real_marker() -> None:
    """A bare leading `Human:` is a real marker, so backslash-n text after it is just text."""
    conv = parse_prompt("Human: say '\\n\\nHuman:' please\n\nAssistant:")
    assert not conv.literal_markers
    assert conv.messages == [{"role": "user", "content": "say '\\n\\nHuman:' please"}]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("hello", MUST_START),
        ("", MUST_START),
        ("\n\nAssistant: hi\n\nHuman: x\n\nAssistant:", MUST_START),
        ("\n\nHuman: hello", MUST_END),
        ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c", MUST_END),
        ("\n\nHuman:\n\nAssistant:", "prompt: Human turn 1 is empty"),
        ("\n\nHuman: \n\nAssistant: {", "prompt: Human turn 1 is empty"),
        (
            "Sys\n\nHuman:\n\nAssistant: a\n\nHuman:  \n\nAssistant:",
            "prompt: Human turn 1 is empty",
        ),
    ],
)
def test_bad_prompts_get_the_legacy_wording(prompt: str, message: str) -> None:
    """Bad prompts are 400s with the legacy API's wording, checked start, end, then empties."""
    with pytest.raises(InvalidRequest) as caught:
        parse_prompt(prompt)
    assert caught.value.message == message
    assert caught.value.status == 400


def test_start_is_checked_before_end() -> None:
    """A prompt wrong at both ends reports the start first, as the legacy API did."""
    with pytest.raises(InvalidRequest, match="must start"):
        parse_prompt("no turns at all, no assistant either")


def test_turns_past_the_cap_are_refused_naming_it() -> None:
    """Each message costs memory whatever its text: a prompt of a million tiny turns
    would hold hundreds of MB. Past MAX_MESSAGES (after merging), a 400."""
    at_cap = "\n\nHuman: a\n\nAssistant: b" * (MAX_MESSAGES // 2) + "\n\nHuman: c\n\nAssistant:"
    with pytest.raises(InvalidRequest, match=r"^prompt: more than 10000 turns \(after merging"):
        parse_prompt(at_cap)
    pairs = "\n\nHuman: a\n\nAssistant: b" * (MAX_MESSAGES // 2 - 1)
    conv = parse_prompt(pairs + "\n\nHuman: c\n\nAssistant:")
    assert len(conv.messages) == MAX_MESSAGES - 1


def test_text_is_stripped_like_str_strip() -> None:
    """Turn texts are stripped without first copying them: the same as str.strip()."""
    conv = parse_prompt("  sys \u3000\n\nHuman: \u2003 a b \t\n\nAssistant:  \u00a0c\u00a0")
    assert conv.system == "sys"
    assert conv.messages == [
        {"role": "user", "content": "a b"},
        {"role": "assistant", "content": "c"},
    ]
