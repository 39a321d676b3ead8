"""Shadow calls: a sample of a route's calls also goes to its secondary arm, in the
background once the primary has answered, and the two answers are compared in a
`shadow` log line. A shadow never delays or fails the client's call: it starts after
the answer is out, at most `MAX_SHADOWS` run at once (more are skipped, and counted),
and its failures are logged, not raised.
"""

import asyncio
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from proxy.errors import BadUpstreamResponse, BridgeError, error_type_for_status
from proxy.rollout.runtime import Runtime, Target
from proxy.translate.request import translate_request
from proxy.translate.response import dumps, message_to_completion
from proxy.translate.sse import ServerSentEvent, SSEDecoder
from proxy.upstream.answer import closing
from proxy.upstream.headers import RawHeaders, passthrough_headers, translated_headers

MAX_SHADOWS = 64


class Capture:
    """What the primary answered, for the comparison: its text and stop reason, set
    directly (translate) or read from the legacy bytes it relayed (pass-through), as
    they pass: gzip or deflate undone, a stream decoded event by event (v1 repeats the
    whole text in every line: nothing is kept but the latest). At most `limit` bytes
    are held; past that, or on anything unreadable, there is no answer to compare."""

    def __init__(self, limit: int, stream: bool) -> None:
        self.limit = limit
        self.stream = stream
        self.broken = False
        self._text: str | None = None
        self._stop: str | None = None
        self._inflate: Any = None
        self._decoder = SSEDecoder(max_event_bytes=limit) if stream else None
        self._parts: list[bytes] = []
        self._size = 0

    def encoding(self, encoding: str | None) -> None:
        """The relayed body's content-encoding."""
        if encoding in ("gzip", "deflate", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding not in (None, "", "identity"):
            self.broken = True  # br, zstd: not read here

    def add(self, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            if self._inflate is not None:
                chunk = self._inflate.decompress(chunk, self.limit)
                if self._inflate.unconsumed_tail:  # more than the limit out of one chunk
                    raise ValueError("too large")
            if self._decoder is None:
                self._size += len(chunk)
                if self._size > self.limit:
                    raise ValueError("too large")
                self._parts.append(chunk)
            else:
                self._events(self._decoder.decode(chunk))
                if self._decoder.too_large:
                    raise ValueError("too large")
        except (ValueError, zlib.error):
            self.broken = True
            self._parts = []

    def _events(self, events: list[ServerSentEvent]) -> None:
        for event in events:
            if event.data == "[DONE]" or event.event == "ping":
                continue
            data = orjson.loads(event.data)
            if not isinstance(data, dict) or data.get("type") != "completion":
                raise ValueError("not a completion")  # an error event: no whole answer
            text = str(data["completion"]) if "completion" in data else ""
            # v2 events carry the new text; v1 lines the whole text so far.
            if event.event == "completion":
                self._text = (self._text or "") + text
            else:
                self._text = text
            self._stop = data.get("stop_reason")

    def set(self, text: str, stop_reason: str | None) -> None:
        self._text, self._stop = text, stop_reason

    def answer(self) -> tuple[str, str | None] | None:
        """(text, stop reason), or None when the primary gave no whole answer."""
        if self.broken:
            return None
        if self._decoder is not None:
            try:
                self._events(self._decoder.flush())
            except ValueError:
                return None
            self._decoder = None
        if self._parts:
            try:
                data = orjson.loads(b"".join(self._parts))
                self._text, self._stop = str(data["completion"]), data.get("stop_reason")
            except (ValueError, KeyError, TypeError):
                return None
            self._parts = []
        if self._text is None or (self.stream and self._stop is None):
            return None
        return self._text, self._stop


def legacy_answer(body: bytes, stream: bool) -> tuple[str, str | None] | None:
    """The text and stop reason of a whole legacy answer: a JSON body, or a v1 or v2
    stream."""
    capture = Capture(len(body) + 1, stream)
    capture.add(body)
    return capture.answer()


def compare(primary: tuple[str, str | None], secondary: tuple[str, str | None]) -> dict[str, Any]:
    """How two answers agree: stop reason, exact text, text with whitespace and case
    normalised, and their lengths."""
    (a, a_stop), (b, b_stop) = primary, secondary
    return {
        "stop_match": a_stop == b_stop,
        "exact_match": a == b,
        "normalised_match": _normalised(a) == _normalised(b),
        "primary_stop_reason": a_stop,
        "secondary_stop_reason": b_stop,
        "primary_chars": len(a),
        "secondary_chars": len(b),
    }


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class ShadowCall:
    """A call to ask the secondary arm again, and the primary's answer to compare."""

    runtime: Runtime
    target: Target
    body: dict[str, Any]
    headers: RawHeaders
    primary: tuple[str, str | None]
    facts: dict[str, Any]  # what the shadow line says of the call


class Shadows:
    """The shadow calls in flight; cancelled at shutdown."""

    def __init__(self, record: Callable[[str, dict[str, Any]], None]) -> None:
        self._record = record
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, call: ShadowCall) -> None:
        if len(self._tasks) >= MAX_SHADOWS:
            self._record("shadow", {**call.facts, "skipped": True})
            return
        call.runtime.active += 1  # now, not when the task first runs: a sweep may come first
        task = asyncio.get_running_loop().create_task(self._run(call), name="shadow call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, call: ShadowCall) -> None:
        started = time.perf_counter()
        result: dict[str, Any] = {"status": None, "error_type": None}
        try:
            status, answer = await ask(call.runtime, call.target, call.body, call.headers)
            result["status"] = status
            if answer is None:
                result["error_type"] = error_type_for_status(status)
            else:
                result.update(compare(call.primary, answer))
        except BridgeError as exc:
            result.update(status=exc.status, error_type=exc.error_type)
        except Exception:  # a shadow's bug is logged, never the client's problem
            structlog.get_logger("complete-bridge").exception("shadow.internal_error")
            result["error_type"] = "api_error"
        finally:
            call.runtime.active -= 1
        duration = round((time.perf_counter() - started) * 1000, 2)
        self._record("shadow", {**call.facts, **result, "duration_ms": duration})

    @property
    def pending(self) -> frozenset[asyncio.Task[None]]:
        return frozenset(self._tasks)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def ask(
    runtime: Runtime, target: Target, body: dict[str, Any], headers: RawHeaders
) -> tuple[int, tuple[str, str | None] | None]:
    """The secondary arm's answer to the call, asked whole (not streamed): its status,
    and (text, stop reason) when it answered 200."""
    body = {**body, "stream": False}
    upstream = target.upstream
    if target.mode == "translate":
        translation = translate_request(body, runtime.settings.models, target=target.model)
        outbound = target.outbound(translated_headers(headers))
        response = await upstream.send("POST", "/v1/messages", outbound, dumps(translation.body))
    else:
        if target.model:
            body["model"] = target.model
        kept = [
            (name, value)
            for name, value in passthrough_headers(headers)
            if name.lower() not in (b"content-length", b"accept-encoding")
        ]  # the answer is read here: asked for as is, not compressed
        response = await upstream.send("POST", "/v1/complete", target.outbound(kept), dumps(body))
    try:
        data = await upstream.read_all(response)
        if response.status_code != 200:
            return response.status_code, None
        if target.mode == "passthrough":
            answer = legacy_answer(data, stream=False)
        else:
            message = orjson.loads(data)
            completion = message_to_completion(
                message,
                model=translation.legacy_model,
                prefill=translation.conversation.prefill is not None,
                local_stops=translation.local_stops,
                v1=False,
            )
            answer = completion["completion"], completion["stop_reason"]
        if answer is None:
            raise BadUpstreamResponse("upstream sent a response the bridge cannot read")
        return 200, answer
    except (ValueError, AttributeError, TypeError, KeyError):
        raise BadUpstreamResponse("upstream sent a response the bridge cannot read") from None
    finally:
        await closing(response)
