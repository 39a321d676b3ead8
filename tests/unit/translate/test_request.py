from typing import Any

import pytest

from proxy.config.models import Capabilities, ModelTable
from proxy.errors import InvalidRequest
from proxy.translate.request import MAX_STOP_SEQUENCES, Translation, translate_request
from tests.fakes.factories import legacy_body

MODELS = ModelTable()


def translate(**overrides: Any) -> Translation:
    return translate_request(legacy_body(**overrides), MODELS)


def test_minimal_body() -> None:
    """The three required fields become model, messages and max_tokens; nothing else is added."""
    t = translate()
    assert t.body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 300,
    }
    assert t.adaptations == ()
    assert t.local_stops == ()
    assert not t.stream
    assert t.legacy_model == "claude-2.1"


@pytest.mark.parametrize(
    ("legacy", "target"),
    [
        ("claude-2", "claude-sonnet-4-5"),
        ("claude-2.0", "claude-sonnet-4-5"),
        ("claude-2.1", "claude-sonnet-4-5"),
        ("claude-1", "claude-sonnet-4-5"),
        ("claude-1.3-100k", "claude-sonnet-4-5"),
        ("claude-v1", "claude-sonnet-4-5"),
        ("claude-v1.3-100k", "claude-sonnet-4-5"),
        ("claude-instant-1", "claude-haiku-4-5"),
        ("claude-instant-1.2", "claude-haiku-4-5"),
        ("claude-instant-v1-100k", "claude-haiku-4-5"),
        ("claude-3-haiku-20240307", "claude-haiku-4-5"),
        ("claude-3-opus-20240229", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-opus-5", "claude-opus-5"),
        ("some-future-model", "some-future-model"),
    ],
)
def test_model_aliases(legacy: str, target: str) -> None:
    """Retired legacy names map to current models; current and unknown names go through."""
    assert translate(model=legacy).body["model"] == target


def test_a_route_target_replaces_the_model_table() -> None:
    """A route's `model` is asked instead of the table's; the legacy name is kept."""
    t = translate_request(legacy_body(model="claude-instant-1"), MODELS, target="claude-opus-5")
    assert (t.body["model"], t.legacy_model) == ("claude-opus-5", "claude-instant-1")


def test_every_default_alias_target_accepts_everything_a_legacy_prompt_carries() -> None:
    """The default targets have capability entries and accept prefill."""
    for _, target in MODELS.aliases:
        caps = MODELS.capabilities_of(target)
        assert caps is not None and caps.prefill


def test_system_and_prefill() -> None:
    """System text goes to `system`; a prefill is the final assistant message."""
    t = translate(prompt="Be brief.\n\nHuman: List\n\nAssistant: [")
    assert t.body["system"] == "Be brief."
    assert t.body["messages"][-1] == {"role": "assistant", "content": "["}


def test_max_tokens_capped_at_the_model_output_limit() -> None:
    """Legacy capped silently; Messages rejects, so the bridge caps and says so."""
    t = translate(max_tokens_to_sample=1_000_000)
    assert t.body["max_tokens"] == 64_000
    assert t.adaptations == ("capped_max_tokens:1000000->64000",)


def test_unknown_model_is_not_capped() -> None:
    """A model the table does not know is left to the upstream to judge."""
    assert translate(model="x-model", max_tokens_to_sample=10**6).body["max_tokens"] == 10**6


def test_optional_fields_copied_only_when_sent() -> None:
    """Absent is not null: samplers, metadata and stream appear only when the client sent them."""
    t = translate(temperature=0.2, top_k=5, metadata={"user_id": "u1"}, stream=True)
    assert t.body["temperature"] == 0.2
    assert t.body["top_k"] == 5
    assert t.body["metadata"] == {"user_id": "u1"}
    assert t.body["stream"] is True
    assert t.stream
    assert "top_p" not in t.body


def test_stream_false_is_not_sent() -> None:
    """`stream: false` is the default, so it is not written out."""
    assert "stream" not in translate(stream=False).body


def test_null_user_id_is_kept() -> None:
    """metadata.user_id may be null in both APIs."""
    assert translate(metadata={"user_id": None}).body["metadata"] == {"user_id": None}


def test_unknown_metadata_keys_dropped() -> None:
    """Messages metadata has only user_id; other keys are dropped and logged."""
    t = translate(metadata={"user_id": "u", "team": "x"})
    assert t.body["metadata"] == {"user_id": "u"}
    assert "dropped_field:metadata.team" in t.adaptations


def test_empty_metadata_sends_none() -> None:
    """An empty metadata object has nothing to forward."""
    assert "metadata" not in translate(metadata={}).body


@pytest.mark.parametrize("name", ["top_k", "top_p"])
def test_minus_one_means_off(name: str) -> None:
    """-1 for top_k/top_p was the legacy "not set"."""
    assert name not in translate(**{name: -1}).body


def test_tags_and_other_legacy_fields_dropped() -> None:
    """`tags` (TypeScript 0.3-0.4) and unknown fields never reach Messages."""
    t = translate(tags={"a": "b"}, foo=1)
    assert "tags" not in t.body and "foo" not in t.body
    assert t.adaptations == ("dropped_field:tags", "dropped_field:foo")


def test_whitespace_stop_sequences_enforced_locally() -> None:
    """Messages rejects whitespace-only stops: the bridge enforces them, forwards the rest."""
    t = translate(stop_sequences=["\n", "\n\n", "END", " "])
    assert t.body["stop_sequences"] == ["END"]
    assert t.local_stops == ("\n", "\n\n", " ")
    assert "local_stop" in t.adaptations


def test_only_whitespace_stops_sends_no_stop_sequences() -> None:
    """With every stop enforced locally, `stop_sequences` is not sent."""
    assert "stop_sequences" not in translate(stop_sequences=["\n"]).body


def test_empty_stop_list_is_forwarded() -> None:
    """An empty list the client sent is kept as it is."""
    assert translate(stop_sequences=[]).body["stop_sequences"] == []


def test_empty_string_stop_is_dropped() -> None:
    """An empty stop sequence would match everywhere; it is dropped and logged."""
    t = translate(stop_sequences=["", "END"])
    assert t.body["stop_sequences"] == ["END"]
    assert t.adaptations == ("dropped_empty_stop",)


def test_one_sampler_model_keeps_temperature() -> None:
    """Sonnet 4.5 takes temperature or top_p: keep temperature, drop top_p."""
    t = translate(temperature=0.5, top_p=0.9)
    assert t.body["temperature"] == 0.5 and "top_p" not in t.body
    assert t.adaptations == ("dropped_top_p",)


def test_one_sampler_model_keeps_top_p_alone() -> None:
    """A lone top_p is fine on a one-sampler model."""
    assert translate(top_p=0.9).body["top_p"] == 0.9


def test_fixed_sampling_model_drops_what_does_not_fit() -> None:
    """After Opus 4.6: temperature 1.0 only, no top_k, top_p >= 0.99."""
    t = translate(model="claude-opus-5", temperature=0.3, top_k=10, top_p=0.5)
    assert {"temperature", "top_k", "top_p"}.isdisjoint(t.body)
    assert t.adaptations == ("dropped_temperature", "dropped_top_k", "dropped_top_p")


def test_fixed_sampling_model_keeps_what_fits() -> None:
    """temperature 1.0 stays; top_p 0.995 goes (one sampler)."""
    t = translate(model="claude-opus-5", temperature=1.0, top_p=0.995)
    assert t.body["temperature"] == 1.0 and "top_p" not in t.body


def test_fixed_sampling_keeps_high_top_p_alone() -> None:
    """top_p >= 0.99 alone fits a fixed-sampling model."""
    assert translate(model="claude-sonnet-5", top_p=0.99).body["top_p"] == 0.99


def test_prefill_refused_on_a_model_without_it() -> None:
    """4.6-generation models reject prefill: a 400 naming the model and the fix."""
    with pytest.raises(InvalidRequest) as caught:
        translate(model="claude-opus-4-6", prompt="\n\nHuman: hi\n\nAssistant: {")
    assert "'claude-opus-4-6'" in caught.value.message
    assert "prefill" in caught.value.message
    assert "model table" in caught.value.message


def test_prefill_refusal_names_the_alias_too() -> None:
    """When an alias routes to a no-prefill model, both names appear."""
    models = ModelTable(
        aliases=(("claude-2*", "claude-opus-4-6"),),
        capabilities={"claude-opus-4-6": Capabilities(max_output=1, prefill=False)},
    )
    with pytest.raises(InvalidRequest, match=r"'claude-2\.1' is served by 'claude-opus-4-6'"):
        translate_request(legacy_body(prompt="\n\nHuman: a\n\nAssistant: b"), models)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": ...}, "model: field required"),
        ({"prompt": ...}, "prompt: field required"),
        ({"max_tokens_to_sample": ...}, "max_tokens_to_sample: field required"),
        ({"model": 3}, "model: must be a string, got an integer"),
        ({"prompt": None}, "prompt: must be a string, got null"),
        ({"max_tokens_to_sample": "10"}, "max_tokens_to_sample: must be an integer, got a string"),
        ({"max_tokens_to_sample": True}, "max_tokens_to_sample: must be an integer, got a boolean"),
        ({"max_tokens_to_sample": 1.5}, "max_tokens_to_sample: must be an integer, got a number"),
        ({"max_tokens_to_sample": 0}, "max_tokens_to_sample: must be at least 1, got 0"),
        ({"temperature": 1.5}, "temperature: must be between 0 and 1, got 1.5"),
        ({"temperature": -1}, "temperature: must be between 0 and 1, got -1"),
        ({"temperature": "hot"}, "temperature: must be a number, got a string"),
        ({"top_p": 2}, "top_p: must be between 0 and 1 (or -1 for off), got 2"),
        ({"top_k": -2}, "top_k: must be at least 0 (or -1 for off), got -2"),
        ({"top_k": 2.5}, "top_k: must be an integer, got a number"),
        ({"stop_sequences": "\n"}, "stop_sequences: must be a list of strings"),
        ({"stop_sequences": [1]}, "stop_sequences: must be a list of strings"),
        ({"metadata": []}, "metadata: must be an object"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: must be a string or null"),
        ({"stream": "yes"}, "stream: must be true or false, got 'yes'"),
    ],
)
def test_bad_fields_say_what_to_fix(overrides: dict[str, object], message: str) -> None:
    """Every malformed field is a 400 naming the field and what it must be."""
    with pytest.raises(InvalidRequest) as caught:
        translate(**overrides)
    assert caught.value.message == message


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_body_must_be_an_object(body: object) -> None:
    """A JSON body that is not an object is a 400."""
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        translate_request(body, MODELS)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": "\n\nHuman: hi \ud83d\n\nAssistant:"}, "prompt"),
        ({"model": "claude-\udc00"}, "model"),
        ({"stop_sequences": ["\ud800"]}, "stop_sequences"),
        ({"metadata": {"user_id": "u\udfff"}}, "metadata.user_id"),
    ],
)
def test_unpaired_surrogates_are_a_400(overrides: dict[str, object], field: str) -> None:
    """Half an emoji (legal in JSON, not in UTF-8) is refused naming the field, not a 500."""
    with pytest.raises(InvalidRequest, match=f"^{field}: contains an unpaired surrogate"):
        translate(**overrides)


def test_stop_sequences_past_the_cap_are_refused_naming_it() -> None:
    """A documented cap far above any app's: past it a 400 naming it, at it served."""
    too_many = ["x"] * (MAX_STOP_SEQUENCES + 1)
    refused = r"^stop_sequences: at most 1000 are accepted, got 1001$"
    with pytest.raises(InvalidRequest, match=refused):
        translate(stop_sequences=too_many)
    served = translate(stop_sequences=["x"] * MAX_STOP_SEQUENCES)
    assert len(served.body["stop_sequences"]) == MAX_STOP_SEQUENCES
