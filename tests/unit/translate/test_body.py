import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.translate.body import MAX_JSON_VALUES, load_body

TOO_MANY = (
    rf"^request body has more than {MAX_JSON_VALUES} JSON values; a legacy request has a few dozen$"
)


def test_a_body_is_a_json_object() -> None:
    assert load_body(bytearray(b'{"model": "m", "stop_sequences": ["a", "b"]}')) == {
        "model": "m",
        "stop_sequences": ["a", "b"],
    }
    with pytest.raises(InvalidRequest, match=r"^request body is not valid JSON: "):
        load_body(b'{"model": ')
    with pytest.raises(InvalidRequest, match=r"^request body must be a JSON object$"):
        load_body(b"[1, 2]")


@pytest.mark.parametrize(
    "junk",
    [
        [[]] * (MAX_JSON_VALUES + 1),  # 3 bytes a value, ~64 bytes of memory each
        [{}] * (MAX_JSON_VALUES + 1),
        [0] * (MAX_JSON_VALUES + 1),
        [""] * (MAX_JSON_VALUES + 1),
        [[[[]]]] * (MAX_JSON_VALUES // 3),
    ],
)
def test_a_body_of_too_many_values_is_refused_before_it_is_parsed(junk: list[object]) -> None:
    with pytest.raises(InvalidRequest, match=TOO_MANY):
        load_body(orjson.dumps({"model": "m", "junk": junk}))


def test_commas_quotes_and_brackets_inside_strings_do_not_count() -> None:
    """A long prose prompt full of commas, quotes and escapes is one value."""
    text = 'a, b, "c" [d] {e} \\ ' * (MAX_JSON_VALUES * 2)
    body = orjson.dumps({"model": "m", "prompt": text, "stop_sequences": ["x"] * 100})
    assert load_body(body)["prompt"] == text


def test_the_count_stops_at_a_string_left_open() -> None:
    """Invalid JSON is orjson's to refuse; the count does not run away on it."""
    body = b'{"prompt": "' + b", " * MAX_JSON_VALUES + b'\\"' * MAX_JSON_VALUES
    with pytest.raises(InvalidRequest, match=r"^request body is not valid JSON: "):
        load_body(body)
    with pytest.raises(InvalidRequest, match=r"^request body is not valid JSON: "):
        load_body(b'{"a": "' + b", " * MAX_JSON_VALUES + b'", "b": "open')
