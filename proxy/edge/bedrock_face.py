"""The downstream side of a Bedrock call: what the call answers (a legacy completion,
its v2 stream, or an error in the legacy envelope) goes out in Bedrock's shapes, with
Bedrock's headers, as it is sent.

    200 JSON     {"completion", "stop_reason", "stop"}; x-amzn-requestid and the
                 x-amzn-bedrock-input/output-token-count headers
    200 stream   application/vnd.amazon.eventstream: `chunk` events, the last with the
                 invocation metrics; an error after the 200, an exception event
    an error     Bedrock's status, `x-amzn-errortype` and `{"message": ...}`

The request id is the call's `call_id` (the one on its log lines). The status the call's
record logs is the one sent.
"""

import time
from typing import Any

import orjson
from starlette.types import Message, Receive, Send

from proxy.edge.downstream import Client
from proxy.errors import INTERNAL_ERROR
from proxy.obs.log import bound
from proxy.obs.record import CompleteRecord
from proxy.translate.bedrock import BedrockStream, bedrock_error, error_body, whole
from proxy.upstream.clock import Clock

EVENT_STREAM = b"application/vnd.amazon.eventstream"
JSON = b"application/json"
_KEPT = frozenset({b"retry-after"})


class BedrockAnswer:
    """One call's answer, rewritten as it is sent."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.record: CompleteRecord | None = None  # set by the endpoint
        self.status: int | None = None  # the one sent
        self._started = time.perf_counter()
        self._first: float | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._stream: BedrockStream | None = None
        self._body = bytearray()

    def _common(self) -> list[tuple[bytes, bytes]]:
        call_id = bound().get("call_id", "")
        kept = [(n, v) for n, v in self._headers if n.lower() in _KEPT]
        return [(b"x-amzn-requestid", str(call_id).encode()), *kept]

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status, self._headers = message["status"], list(message.get("headers", []))
            content_type = dict((n.lower(), v) for n, v in self._headers).get(b"content-type")
            if self._status == 200 and (content_type or b"").startswith(b"text/event-stream"):
                self._stream = BedrockStream()
                headers = [
                    (b"content-type", EVENT_STREAM),
                    (b"x-amzn-bedrock-content-type", JSON),
                    *self._common(),
                ]
                self.status = 200
                await self._send({"type": "http.response.start", "status": 200, "headers": headers})
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        data, more = message.get("body", b""), message.get("more_body", False)
        if self._stream is not None:
            out = self._stream.feed(data)
            if out and self._first is None:
                self._first = time.perf_counter()
            if not more:
                out += self._stream.end(*self._tokens(), *self._latencies())
            await self._send({"type": "http.response.body", "body": out, "more_body": more})
            return
        self._body += data
        if not more:
            await self._whole()

    def _tokens(self) -> tuple[int | None, int | None]:
        record = self.record
        return (None, None) if record is None else (record.input_tokens, record.output_tokens)

    def _latencies(self) -> tuple[int, int]:
        now = time.perf_counter()
        first = self._first or now
        return round((now - self._started) * 1000), round((first - self._started) * 1000)

    async def _whole(self) -> None:
        headers = self._common()
        try:
            answer: Any = orjson.loads(self._body)
        except ValueError:
            answer = None
        if self._status == 200 and isinstance(answer, dict) and "completion" in answer:
            status, body = 200, whole(answer)
            headers.append((b"content-type", JSON))
            for kind, count in zip(("input", "output"), self._tokens(), strict=True):
                if count is not None:
                    headers.append((f"x-amzn-bedrock-{kind}-token-count".encode(), b"%d" % count))
            headers.append((b"x-amzn-bedrock-invocation-latency", b"%d" % self._latencies()[0]))
        else:
            error = answer.get("error") if isinstance(answer, dict) else None
            if not isinstance(error, dict):
                error = {"type": "api_error", "message": INTERNAL_ERROR}
            bedrock = bedrock_error(str(error.get("type")))
            status, body = bedrock.status, error_body(str(error.get("message", "")))
            headers += [(b"content-type", JSON), (b"x-amzn-errortype", bedrock.name.encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        self.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class BedrockClient(Client):
    """A Bedrock call's client: what is written to it goes out through its BedrockAnswer;
    `status` is the one Bedrock's client got (the legacy one until it is sent)."""

    def __init__(self, receive: Receive, send: Send, clock: Clock | None = None) -> None:
        self.answer = BedrockAnswer(send)
        super().__init__(receive, self.answer.send, clock)

    @property
    def status(self) -> int | None:
        return self.answer.status or self._legacy_status

    @status.setter
    def status(self, status: int | None) -> None:
        self._legacy_status = status
