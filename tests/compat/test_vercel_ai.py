"""Vercel's `ai` 2.2 (the Next.js pattern of 2023): a route handler `fetch`es
/v1/complete with stream: true and hands the response to `AnthropicStream`, then returns
it as a `StreamingTextResponse`. Its parser turns each data line into "this completion
minus the previous one when it extends it, else the whole completion", for v1 lines
(the whole text so far) and v2 events (new text each) alike; an `error` field throws.
So a v1 stream whose last line repeated the text before it showed the text twice."""

import pytest

from tests.fakes.answers import Received

from .envs import VERCEL_AI, Drive, Sdk, ensure

pytestmark = pytest.mark.compat

VERSIONS = pytest.mark.parametrize("version", [None, "2023-06-01"], ids=["v1", "v2"])
READS = pytest.mark.parametrize("read", ["stream", "response"])


@pytest.fixture(scope="session")
def ai() -> Sdk:
    return ensure(VERCEL_AI)


def params(**overrides: object) -> dict[str, object]:
    return {"model": "claude-2.1", "max_tokens_to_sample": 50, **overrides}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@VERSIONS
@READS
def test_the_text_arrives_once(
    ai: Sdk, drive: Drive, received: list[Received], version: str | None, read: str
) -> None:
    """The app's reader gets the exact completion, once, in pieces as it is produced."""
    out = drive(ai, version=version, read=read, messages=user("Hello there"), params=params())
    assert (out["status"], out["error"]) == (200, None)
    assert out["text"] == " echo: Hello there"
    if read == "stream":
        assert len(out["chunks"]) > 1, out["chunks"]
    (request,) = received
    assert request.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert request.body["stream"] is True


@VERSIONS
def test_a_bridge_enforced_stop_cuts_the_text_once(
    ai: Sdk, drive: Drive, received: list[Received], version: str | None
) -> None:
    """A "\\n" stop the bridge enforces: the text up to it, once, nothing after."""
    scenario = params(stop_sequences=["\\n"])
    out = drive(
        ai, version=version, read="stream", messages=user("SAY line1\\nline2"), params=scenario
    )
    assert (out["error"], out["text"]) == (None, " line1")


@VERSIONS
def test_a_one_word_answer(
    ai: Sdk, drive: Drive, received: list[Received], version: str | None
) -> None:
    """A completion in a single piece: v1 holds it for the last line, which still shows it."""
    out = drive(ai, version=version, read="stream", messages=user("SAY Yes"), params=params())
    assert (out["error"], out["text"]) == (None, " Yes")


@VERSIONS
def test_a_prefill_and_a_conversation(
    ai: Sdk, drive: Drive, received: list[Received], version: str | None
) -> None:
    """experimental_buildAnthropicPrompt joins turns with commas (an array turned into a
    string); the bridge reads them as turns all the same and the reply has no extra space."""
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Give JSON"},
    ]
    out = drive(ai, version=version, read="response", messages=messages, params=params())
    assert (out["error"], out["text"]) == (None, " echo: Give JSON")
    assert received[0].body["messages"] == [
        {"role": "user", "content": "Hi,"},
        {"role": "assistant", "content": "Hello!,"},
        {"role": "user", "content": "Give JSON"},
    ]


@VERSIONS
def test_a_failure_midstream_surfaces_after_the_text(
    ai: Sdk, drive: Drive, received: list[Received], version: str | None
) -> None:
    """An upstream error after the 200: AnthropicStream throws on the error line or event,
    after the text before it, each piece once. `ai` itself drops text it parsed in the
    same network read as the error (throwing errors its stream, whose queue is dropped):
    the last piece arrives just before the error, in v1 (held back, then sent with the
    error line) and often in v2 too, so the app gets the text with or without it. A raw
    reader gets it all (test_sdks.py::test_midstream_error)."""
    question = user("MIDSTREAM_ERROR now")
    out = drive(ai, version=version, read="stream", messages=question, params=params())
    assert out["error"] == "overloaded_error: Overloaded"
    assert "".join(out["chunks"]) in (" echo:", " echo: MIDSTREAM_ERROR"), out["chunks"]
