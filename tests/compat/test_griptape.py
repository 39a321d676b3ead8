"""griptape 0.23's AnthropicPromptDriver writes an empty system text as an empty first
Human turn: every prompt of an Agent without rulesets starts
`"\\n\\nHuman: \\n\\nAssistant:\\n\\nHuman: ..."`. The old API answered it; so does the bridge,
dropping the empty turns (a prompt without any Human text is still a 400)."""

import json

import httpx
import pytest

from tests.fakes.answers import Received

from .envs import GRIPTAPE, Drive, Sdk, ensure

pytestmark = pytest.mark.compat

GRIPTAPE_PROMPT = "\n\nHuman: \n\nAssistant:\n\nHuman: Hello there\n\nAssistant:"
streams = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@pytest.fixture(scope="session")
def griptape() -> Sdk:
    return ensure(GRIPTAPE)


@pytest.mark.parametrize("version", [None, "2023-06-01"], ids=["v1", "v2"])
@streams
def test_the_prompt_shape_through_the_bridge(
    bridge: str, received: list[Received], version: str | None, stream: bool
) -> None:
    """That exact prompt, sent as it is: answered, with only the Human text upstream."""
    body = {"model": "claude-2", "prompt": GRIPTAPE_PROMPT, "max_tokens_to_sample": 50}
    headers = {"x-api-key": "sk-compat", **({"anthropic-version": version} if version else {})}
    response = httpx.post(
        f"{bridge}/v1/complete", json={**body, "stream": stream}, headers=headers, timeout=20
    )
    assert response.status_code == 200, response.text
    if stream:
        datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: {")]
        events = [event for data in datas if "completion" in (event := json.loads(data))]
        texts = [event["completion"] for event in events]
        assert (texts[-1] if version is None else "".join(texts)) == " echo: Hello there"
        assert events[-1]["stop_reason"] == "stop_sequence"
    else:
        assert response.json()["completion"] == " echo: Hello there"
    (request,) = received
    assert request.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert "system" not in request.body


def test_a_prompt_without_human_text_is_still_a_400(bridge: str, received: list[Received]) -> None:
    """All Human turns empty: the legacy 400, and nothing reaches the upstream."""
    body = {"model": "claude-2", "prompt": "\n\nHuman: \n\nAssistant:", "max_tokens_to_sample": 5}
    response = httpx.post(f"{bridge}/v1/complete", json=body, timeout=20)
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt: Human turn 1 is empty"},
    }
    assert received == []


@streams
def test_an_agent_gets_its_answer(
    griptape: Sdk, drive: Drive, received: list[Received], stream: bool
) -> None:
    """griptape's Agent, unmodified but for the client's base URL, gets the answer; the
    upstream got the question alone (its empty system turn dropped)."""
    out = drive(griptape, question="Hello there", model="claude-2.0", stream=stream)
    assert out == {"output": "echo: Hello there", "error": None, "prompt": GRIPTAPE_PROMPT}
    (request,) = received
    assert request.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert request.body.get("stream", False) is stream
