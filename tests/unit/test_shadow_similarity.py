"""The shadow comparison's similarity and length ratio (proxy/edge/shadows.py `compare`):
token-set Jaccard over case-folded words, over each answer's first SIMILARITY_CHARS
characters only, so one comparison's work is bounded whatever the answers."""

from proxy.edge.shadows import SIMILARITY_CHARS, compare, similarity
from proxy.obs.record import ShadowRecord


def compared(primary: str, secondary: str) -> ShadowRecord:
    record = ShadowRecord(
        route="r", caller=None, legacy_model=None, format="v2", stream=False,
        primary_mode="passthrough", secondary_mode="translate",
    )  # fmt: skip
    compare((primary, "stop_sequence"), (secondary, "stop_sequence"), record)
    return record


def test_similarity_is_the_share_of_words_in_common() -> None:
    assert similarity("The sky is blue", "the  SKY is\nblue") == 1.0
    assert similarity("red green", "blue yellow") == 0.0
    assert similarity("a b c d", "a b x y") == round(2 / 6, 4)
    assert similarity("", "") == 1.0 and similarity("", "words") == 0.0


def test_only_the_first_characters_are_compared() -> None:
    """Answers that differ only past the cap are the same to the comparison: the work
    is bounded by the cap, not by the answers."""
    head = "word " * (SIMILARITY_CHARS // 5)
    assert similarity(head + "alpha " * 10_000, head + "omega " * 10_000) == 1.0
    assert similarity(head[:-10] + " alpha", head[:-10] + " omega") < 1.0


def test_compare_logs_similarity_and_length_ratio() -> None:
    record = compared("the sky is blue because of scattering", "the sky is blue")
    assert record.similarity == round(4 / 7, 4)
    assert record.length_ratio == round(15 / 37, 4)
    assert record.line()["similarity"] == record.similarity
    assert compared("", "").length_ratio == 1.0 and compared("", "x").length_ratio is None
