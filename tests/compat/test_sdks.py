"""The released SDKs, unmodified but for their base URL, against the bridge in front of the
strict fake Messages API: what each application sees, and what reached the upstream."""

from itertools import pairwise
from typing import Any

import pytest

from tests.fakes.answers import Received

from .envs import Drive, Sdk

pytestmark = pytest.mark.compat

HUMAN_STOP = "\n\nHuman:"
ENVELOPE_529 = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "scripted failure 529"},
}
OVERLOADED = {"type": "overloaded_error", "message": "Overloaded"}
streams = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def params(**overrides: object) -> dict[str, object]:
    return {"model": "claude-2.1", "max_tokens_to_sample": 50, **overrides}


def outcome(sdk: Sdk, out: dict[str, Any], stream: bool) -> tuple[str, str, str | None, str]:
    """(text, stop_reason, stop, model) of a finished call, as the application sees it."""
    assert out["error"] is None, out["error"]
    if not stream:
        result = out["result"]
        if sdk.stream_format == "v1":
            assert (result["truncated"], result["exception"]) == (False, None)
        return result["completion"], result["stop_reason"], result["stop"], result["model"]
    check_stream(sdk, out)
    events = out["events"]
    last = events[-1]
    if sdk.stream_format == "v2":
        text = "".join(event["completion"] for event in events)
    else:
        text = last["completion"]
    return text, last["stop_reason"], last["stop"], last["model"]


def check_stream(sdk: Sdk, out: dict[str, Any]) -> None:
    """The shape each stream format promises: open events first, one final event last.
    (v1 holds its newest piece for the final line: a one-piece answer is that line alone.)"""
    *opening, last = out["events"]
    assert opening or sdk.stream_format == "v1", "a stream has text events before its final one"
    assert last["stop_reason"] is not None
    for event in opening:
        assert event["stop_reason"] is None
        assert event["stop"] is None
    if sdk.stream_format == "v2":
        assert last["completion"] == ""
        return
    texts = [event["completion"] for event in out["events"]]
    assert all(b.startswith(a) and b != a for a, b in pairwise(texts)), texts  # SPEC §4
    for event in out["events"]:
        assert (event["truncated"], event["exception"]) == (False, None)
    if sdk.name == "ts-0.4.4":
        assert out["result"] == last


def only_request(received: list[Received]) -> Any:
    (request,) = received
    return request.body


@streams
def test_completion(sdk: Sdk, drive: Drive, received: list[Received], stream: bool) -> None:
    """A plain question gets the legacy answer: leading space, a Human stop, the model asked."""
    out = drive(sdk, stream=stream, question="Hello there", params=params())
    text, stop_reason, stop, model = outcome(sdk, out, stream)
    assert (text, stop_reason, stop, model) == (
        " echo: Hello there",
        "stop_sequence",
        HUMAN_STOP,
        "claude-2.1",
    )
    if stream:  # v1 lines lag a piece behind: the first comes with the second piece
        pieces = len(out["events"]) - (sdk.stream_format == "v2")  # v2 ends with ""
        assert pieces >= 2, "the text arrives in pieces, as it is produced"
    (request,) = received
    assert request.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.headers["x-api-key"] == "sk-compat"


@streams
def test_max_tokens(sdk: Sdk, drive: Drive, received: list[Received], stream: bool) -> None:
    """A reply cut by max_tokens_to_sample ends with stop_reason max_tokens and no stop."""
    out = drive(sdk, stream=stream, question="Hello there", params=params(max_tokens_to_sample=2))
    assert outcome(sdk, out, stream)[:3] == (" echo: Hello", "max_tokens", None)
    assert only_request(received)["max_tokens"] == 2


@streams
def test_whitespace_stop_sequence(
    sdk: Sdk, drive: Drive, received: list[Received], stream: bool
) -> None:
    """A "\\n" stop, which Messages refuses, is enforced by the bridge and reported as hit."""
    scenario = params(stop_sequences=["\n"])
    out = drive(sdk, stream=stream, question="SAY line1\nline2", params=scenario)
    assert outcome(sdk, out, stream)[:3] == (" line1", "stop_sequence", "\n")
    assert "\n" not in only_request(received).get("stop_sequences", [])


@streams
def test_system_prompt_and_prefill(
    sdk: Sdk, drive: Drive, received: list[Received], stream: bool
) -> None:
    """Text before the first Human turn is the system prompt; a trailing Assistant text is
    a prefill sent without its trailing space, and the reply gets no leading space."""
    prompt = "You are terse.\n\nHuman: Give JSON\n\nAssistant: Sure: "
    scenario = params(prompt=prompt)
    if sdk.name == "py-0.2.10":
        scenario["disable_checks"] = True  # its client-side prompt checks refuse a system prompt
    out = drive(sdk, stream=stream, params=scenario)
    assert outcome(sdk, out, stream)[:3] == ("echo: Give JSON", "stop_sequence", HUMAN_STOP)
    body = only_request(received)
    assert body["system"] == "You are terse."
    assert body["messages"] == [
        {"role": "user", "content": "Give JSON"},
        {"role": "assistant", "content": "Sure:"},
    ]


def test_samplers_fit_the_target_model(sdk: Sdk, drive: Drive, received: list[Received]) -> None:
    """Legacy samplers reach a one-sampler model as temperature alone; -1 means unset."""
    scenario = params(temperature=0.5, top_p=0.9, top_k=-1, metadata={"user_id": "u-1"})
    if sdk.name == "ts-0.4.4":
        scenario["tags"] = {"app": "compat"}  # TypeScript 0.3-0.4 sent tags
    out = drive(sdk, stream=False, question="Hello there", params=scenario)
    assert outcome(sdk, out, False)[0] == " echo: Hello there"
    body = only_request(received)
    assert body["temperature"] == 0.5
    assert body["metadata"] == {"user_id": "u-1"}
    assert not {"top_p", "top_k", "tags"} & set(body)


@streams
def test_upstream_error(sdk: Sdk, drive: Drive, received: list[Received], stream: bool) -> None:
    """An upstream 529 surfaces as the SDK's own error, once: x-should-retry: false holds."""
    out = drive(sdk, stream=stream, question="FAIL 529", params=params())
    error = out["error"]
    if sdk.name == "py-0.2.10":
        message = "post request failed with status code: 529"
        assert error == {"class": "ApiException", "args": [message, ENVELOPE_529]}
    elif sdk.name == "ts-0.4.4":
        opening = (
            "Failed to open sampling stream, HTTP status code" if stream else "Sampling error:"
        )
        assert error["message"].startswith(f"{opening} 529"), error
    else:
        kind = "OverloadedError" if sdk.name == "py-0.125.0" else "InternalServerError"
        assert error == {"class": kind, "status": 529, "body": ENVELOPE_529}
    assert len(received) == 1


def test_midstream_error(sdk: Sdk, drive: Drive, received: list[Received]) -> None:
    """An upstream error after the 200 ends the stream as an error the SDK surfaces, promptly."""
    out = drive(sdk, stream=True, question="MIDSTREAM_ERROR now", params=params())
    events = out["events"]
    if sdk.stream_format == "v1":
        *opening, last = events
        exception = "overloaded_error: Overloaded"
        assert last == {"type": "error", "error": OVERLOADED, "exception": exception}
        texts = [event["completion"] for event in opening]
        if sdk.name == "ts-0.4.4":
            assert out["result"] == last  # it settles rather than reconnecting forever
    else:
        kind = "APIError" if sdk.name == "ts-0.137.0" else "APIStatusError"
        status = None if sdk.name == "ts-0.137.0" else 200
        body = {"type": "error", "error": OVERLOADED}
        assert out["error"] == {"class": kind, "status": status, "body": body}
        texts = ["".join(event["completion"] for event in events)]
    assert texts and all(" echo: MIDSTREAM_ERROR".startswith(t) for t in texts), texts
    assert len(received) == 1


@pytest.mark.parametrize("sdk", ["ts-0.137.0"], indirect=True)
def test_literal_prompt_constants(sdk: Sdk, drive: Drive, received: list[Received]) -> None:
    """TypeScript 0.137's HUMAN_PROMPT is a literal backslash-n, and its prompts still work."""
    out = drive(sdk, stream=False, question="Hello there", params=params())
    assert out["human_prompt"] == "\\n\\nHuman:"
    assert outcome(sdk, out, False)[0] == " echo: Hello there"
    assert only_request(received)["messages"] == [{"role": "user", "content": "Hello there"}]
