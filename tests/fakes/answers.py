"""What the fake upstream (tests/fakes/upstream.py) answers, as data: the reply to a
Messages request under the strict rules (tests/fakes/rules.py) and its script (the
prompt's SAY, FAIL and MIDSTREAM_ERROR, and the fake's `Script`). Pure: the fake's two
front-ends send the same `Answer`."""

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes import factories, rules, sse


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, or the raw bytes when it was not JSON


@dataclass(frozen=True)
class Answer:
    """What the fake answers: a status, headers and the body in parts (a stream's events);
    part `gate_at` waits for the gate."""

    status: int
    headers: dict[str, str]
    parts: list[bytes]
    stream: bool = False
    gate_at: int = 0


def compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    sent = {"content-type": "application/json", "request-id": "req_fake", **(headers or {})}
    return Answer(status, sent, [compact(rules.error_body(status, message))])


def words(text: str) -> list[str]:
    """Split text into word tokens, each keeping the whitespace before it (and the last one
    any whitespace after it), so that joining them gives the text back."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or ([text] if text else [])


def reply(body: dict[str, Any], text: str) -> tuple[list[str], str, str | None]:
    """The tokens of reply `text`, its stop_reason and the matched stop sequence."""
    matches = [(text.find(s), s) for s in body.get("stop_sequences", []) if s in text]
    stop = min(matches)[1] if matches else None
    tokens = words(text[: text.find(stop)] if stop else text)
    if len(tokens) > body["max_tokens"]:
        return tokens[: body["max_tokens"]], "max_tokens", None
    return tokens, ("stop_sequence" if stop else "end_turn"), stop


@dataclass(frozen=True)
class Script:
    """What the fake says unless the prompt scripts it: `say` instead of the echo; `key`:
    a call without an API key is refused (401); `ping`: streams carry a ping event."""

    say: str | None = None
    key: bool = True
    ping: bool = True


def respond(request: Received, number: int, script: Script = Script()) -> Answer:
    """The answer to the `number`th request."""
    if (request.method, request.path) != ("POST", "/v1/messages"):
        return error(404, f"Not found: {request.method} {request.path}")
    body = request.body
    try:
        rules.check_headers(request.headers, key=script.key)
        rules.check_body(body)
    except rules.Rejected as e:
        return error(e.status, e.message)
    prompt = rules.text_of([m for m in body["messages"] if m["role"] == "user"][-1]["content"])
    if match := re.match(r"FAIL (\d{3})", prompt):
        status = int(match[1])
        headers = {"retry-after": "1", "x-should-retry": "false"}
        return error(status, f"scripted failure {status}", headers)
    if prompt.startswith("SAY "):
        text = prompt[4:]
    else:
        text = script.say if script.say is not None else "echo: " + prompt
    tokens, stop_reason, stop_sequence = reply(body, text)
    sent = [body.get("system", "")] + [rules.text_of(m["content"]) for m in body["messages"]]
    usage = {
        "input_tokens": sum(len(words(t)) for t in sent if isinstance(t, str)),
        "output_tokens": len(tokens),
    }
    message = factories.message(
        "".join(tokens),
        id=f"msg_fake{number:06d}",
        model=body["model"],
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=usage,
    )
    headers = {
        "request-id": f"req_fake{number:06d}",
        "anthropic-ratelimit-requests-remaining": "999",
    }
    if not body.get("stream"):
        return Answer(200, {"content-type": "application/json", **headers}, [compact(message)])
    events = sse.message_events(message, tokens, ping=script.ping)
    gate_at = 4 if script.ping else 3  # after the first delta
    if prompt.startswith("MIDSTREAM_ERROR") and len(tokens) > 2:
        overloaded = {"type": "overloaded_error", "message": "Overloaded"}
        events = [*events[: gate_at + 1], sse.event("error", error=overloaded)]
    headers = {"content-type": "text/event-stream; charset=utf-8", **headers}
    return Answer(200, headers, events, stream=True, gate_at=gate_at)
