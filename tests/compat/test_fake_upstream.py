"""The fake Messages API is only useful while it stays as strict as the real one."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.upstream import FakeUpstream

HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


def body(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    return {**base, **overrides}


def chat(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]


@pytest.fixture
def app() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
async def client(app: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        yield client


async def post(
    client: httpx.AsyncClient, payload: object, headers: dict[str, str] = HEADERS
) -> httpx.Response:
    return await client.post("/v1/messages", json=payload, headers=headers)


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(name, data) pairs of an SSE body."""
    blocks = response.text.strip().split("\n\n")
    return [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
        for block in blocks
    ]


async def test_echoes_the_last_user_message(client: httpx.AsyncClient) -> None:
    """A valid request is answered with "echo: " and the last user text, ending the turn."""
    response = await post(client, body())
    assert response.status_code == 200
    assert response.headers["request-id"]
    assert response.headers["anthropic-ratelimit-requests-remaining"]
    message = response.json()
    assert message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": "echo: Hello there"}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)
    assert message["usage"] == {"input_tokens": 2, "output_tokens": 3}


async def test_stops_at_the_first_stop_sequence(client: httpx.AsyncClient) -> None:
    """The reply is cut before the earliest stop sequence, which is reported."""
    payload = body(messages=chat("a, b; c, d"), stop_sequences=[";", ","])
    message = (await post(client, payload)).json()
    assert message["content"][0]["text"] == "echo: a"
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", ",")


async def test_truncates_at_max_tokens_words(client: httpx.AsyncClient) -> None:
    """A reply longer than max_tokens words is cut there with stop_reason max_tokens."""
    message = (await post(client, body(max_tokens=2))).json()
    assert message["content"][0]["text"] == "echo: Hello"
    assert (message["stop_reason"], message["stop_sequence"]) == ("max_tokens", None)


async def test_say_replies_exactly(client: httpx.AsyncClient) -> None:
    """`SAY <text>` makes the model say exactly <text>."""
    message = (await post(client, body(messages=chat("SAY line1\nline2")))).json()
    assert message["content"][0]["text"] == "line1\nline2"


async def test_scripted_failure(client: httpx.AsyncClient) -> None:
    """`FAIL <status>` answers that status with the envelope and no-retry headers."""
    response = await post(client, body(messages=chat("FAIL 529")))
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["retry-after"] == "1"


async def test_stream_is_a_messages_event_stream(client: httpx.AsyncClient) -> None:
    """A stream carries the Messages event sequence with one text delta per word."""
    response = await post(client, body(stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events(response)]
    assert names == [
        "message_start", "content_block_start", "ping",
        "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    deltas = [data["delta"]["text"] for name, data in events(response) if name.endswith("k_delta")]
    assert deltas == ["echo:", " Hello", " there"]
    assert events(response)[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


async def test_midstream_error(client: httpx.AsyncClient) -> None:
    """`MIDSTREAM_ERROR` sends an overloaded error event after two deltas and nothing more."""
    response = await post(client, body(stream=True, messages=chat("MIDSTREAM_ERROR now")))
    names = [name for name, _ in events(response)]
    assert names[-3:] == ["content_block_delta", "content_block_delta", "error"]
    error = {"type": "overloaded_error", "message": "Overloaded"}
    assert events(response)[-1][1] == {"type": "error", "error": error}


async def test_records_every_request(client: httpx.AsyncClient, app: FakeUpstream) -> None:
    """Each request body and its headers are kept, rejected ones included."""
    await post(client, body(prompt="x"))
    (received,) = app.requests
    assert received.body["prompt"] == "x"
    assert received.headers["anthropic-version"] == "2023-06-01"


async def test_other_paths_are_not_found(client: httpx.AsyncClient) -> None:
    """Anything but POST /v1/messages is a 404 in the error envelope."""
    response = await client.get("/v1/models", headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"anthropic-version": "2023-06-01"}, 401),
        ({"x-api-key": "k"}, 400),
        ({"x-api-key": "k", "anthropic-version": "2023-01-01"}, 400),
    ],
    ids=["no-key", "no-version", "old-version"],
)
async def test_rejects_bad_headers(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    """A request needs a key and exactly anthropic-version 2023-06-01."""
    response = await post(client, body(), headers=headers)
    assert response.status_code == status


async def test_accepts_bearer_auth(client: httpx.AsyncClient) -> None:
    """`authorization: Bearer` is as good as x-api-key."""
    headers = {"authorization": "Bearer k", "anthropic-version": "2023-06-01"}
    assert (await post(client, body(), headers=headers)).status_code == 200


REJECTED = {
    "legacy prompt": body(prompt="\n\nHuman: hi\n\nAssistant:"),
    "max_tokens_to_sample": body(max_tokens_to_sample=5),
    "tags": body(tags={"a": "b"}),
    "no max_tokens": {"model": "claude-sonnet-4-5", "messages": chat("hi")},
    "max_tokens 0": body(max_tokens=0),
    "max_tokens over cap": body(max_tokens=64001),
    "opus 4.1 cap": body(model="claude-opus-4-1", max_tokens=32001),
    "no messages": body(messages=[]),
    "assistant first": body(messages=[{"role": "assistant", "content": "hi"}]),
    "same role twice": body(messages=[*chat("a"), *chat("b")]),
    "empty user turn": body(messages=chat("")),
    "empty middle assistant": body(messages=chat("a", "", "b")),
    "trailing space prefill": body(messages=chat("a", "Sure: ")),
    "trailing newline prefill": body(messages=chat("a", "{\n")),
    "empty stop": body(stop_sequences=[""]),
    "newline stop": body(stop_sequences=["\n"]),
    "blank stop": body(stop_sequences=[" \n\n "]),
    "temperature with top_p": body(temperature=0.5, top_p=0.9),
    "haiku both samplers": body(model="claude-haiku-4-5", temperature=0.5, top_p=0.9),
    "temperature over 1": body(temperature=1.5),
    "top_k -1": body(top_k=-1),
    "top_p -1": body(top_p=-1),
    "prefill on 4.6": body(model="claude-opus-4-6", messages=chat("a", "b")),
    "prefill on sonnet 4.6": body(model="claude-sonnet-4-6", messages=chat("a", "b")),
    "prefill on later": body(model="claude-opus-4-7", messages=chat("a", "b")),
    "later temperature": body(model="claude-opus-4-7", temperature=0.5),
    "later top_k": body(model="claude-opus-5", top_k=5),
    "later low top_p": body(model="claude-sonnet-5", top_p=0.9),
    "metadata extra key": body(metadata={"user_id": "u", "session": "s"}),
    "stream not bool": body(stream="yes"),
}


@pytest.mark.parametrize("payload", REJECTED.values(), ids=REJECTED.keys())
async def test_rejects_what_the_real_api_rejects(
    client: httpx.AsyncClient, payload: dict[str, object]
) -> None:
    """Each body the real Messages API refuses is a 400 invalid_request_error here too."""
    response = await post(client, payload)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_unknown_model_is_not_found(client: httpx.AsyncClient) -> None:
    """A model the API does not serve, such as a legacy name, is a 404."""
    response = await post(client, body(model="claude-2.1"))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


ACCEPTED = {
    "prefill": body(messages=chat("a", "Sure:")),
    "empty final assistant": body(messages=chat("a", "")),
    "text blocks": body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}]}]),
    "dated snapshot": body(model="claude-sonnet-4-5-20250929"),
    "4.6 cap": body(model="claude-opus-4-6", max_tokens=128000),
    "one sampler": body(temperature=0.5, top_k=5),
    "later temperature 1": body(model="claude-opus-4-7", temperature=1.0),
    "later top_p 0.99": body(model="claude-fable-5", top_p=0.99),
    "system and metadata": body(system="Be terse.", metadata={"user_id": "u"}),
    "stop with whitespace around text": body(stop_sequences=["\n\nHuman:"]),
}


@pytest.mark.parametrize("payload", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_accepts_what_the_real_api_accepts(
    client: httpx.AsyncClient, payload: dict[str, object]
) -> None:
    """The fake is strict, not stricter: bodies the real API takes are answered."""
    response = await post(client, payload)
    assert response.status_code == 200, response.text


async def test_error_messages_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    """Rejections name the offending field the way the real API does."""
    cases = {
        "prompt: Extra inputs are not permitted": body(prompt="x"),
        "final assistant content cannot end with trailing whitespace": body(
            messages=chat("a", "b ")
        ),
    }
    for message, payload in cases.items():
        assert (await post(client, payload)).json()["error"]["message"] == message
