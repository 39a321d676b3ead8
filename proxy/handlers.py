"""The endpoints: where the pure translation core meets the client and the upstream.

Each request ends in one canonical log line. A client that hangs up cancels the work,
which closes the upstream request at once (nobody pays for tokens no one will read).
"""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import orjson
import structlog
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from proxy.config import Settings
from proxy.errors import (
    BadUpstreamResponse,
    BridgeError,
    InvalidRequest,
    RequestTooLarge,
    error_type_for_status,
)
from proxy.translate.request import Translation, translate_request
from proxy.translate.response import dumps, error_envelope, message_to_completion
from proxy.translate.stream import CompletionStream
from proxy.upstream import (
    RawHeaders,
    Upstream,
    chunks,
    passthrough_headers,
    read_all,
    relayed_headers,
    translated_headers,
)
from proxy.wire import ErrorDetail

JSON = (b"content-type", b"application/json")
SSE = (b"content-type", b"text/event-stream; charset=utf-8")
NO_CACHE = (b"cache-control", b"no-cache")
INTERNAL: ErrorDetail = {
    "type": "api_error",
    "message": "internal error in the bridge; see its log",
}


@dataclass(frozen=True, slots=True)
class Bridge:
    """What every endpoint shares; built once by create_app."""

    settings: Settings
    upstream: Upstream


class ClientGone(Exception):
    """The client hung up while we were reading its request."""


class Client:
    """The ASGI side of one request: its body, its disconnect, and the response sent."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive, self._send = receive, send
        self._body_read = anyio.Event()
        self.started = time.perf_counter()
        self.status: int | None = None
        self.first_byte: float | None = None
        self.disconnected = False
        self.complete = False

    async def body_chunks(self, limit: int) -> AsyncIterator[bytes]:
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
            yield chunk
            if not message.get("more_body", False):
                self._body_read.set()
                return

    async def read_body(self, limit: int) -> bytes:
        return b"".join([chunk async for chunk in self.body_chunks(limit)])

    async def until_disconnect(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`, cancelling it if the client hangs up once its body is read."""
        try:
            await self._run_watched(work)
        except BaseExceptionGroup as group:  # anyio wraps even the one error work raised
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _run_watched(self, work: Callable[[], Awaitable[None]]) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await self._body_read.wait()
                message: Message = {"type": ""}
                while message["type"] != "http.disconnect":
                    message = await self._receive()
                if not self.complete:  # the server also says so once a response is done
                    self.disconnected = True
                    group.cancel_scope.cancel()

            group.start_soon(watch, name="watch for client disconnect")
            await work()
            group.cancel_scope.cancel()

    async def start(self, status: int, headers: RawHeaders) -> None:
        self.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes, *, more: bool = True) -> None:
        if self.first_byte is None and data:
            self.first_byte = time.perf_counter()
        await self._send({"type": "http.response.body", "body": data, "more_body": more})
        self.complete = not more

    async def respond(self, status: int, headers: RawHeaders, body: bytes) -> None:
        await self.start(status, [*headers, (b"content-length", str(len(body)).encode())])
        await self.write(body, more=False)

    async def error(self, exc: BridgeError) -> None:
        headers = [JSON] if exc.retryable else [JSON, (b"x-should-retry", b"false")]
        await self.respond(exc.status, headers, dumps(error_envelope(exc.error_type, exc.message)))

    def timings(self) -> dict[str, float | None]:
        first = self.first_byte
        return {
            "ttfb_ms": None if first is None else round((first - self.started) * 1000, 2),
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
        }


async def closing(response: httpx.Response) -> None:
    """Close an upstream response even while our task is being cancelled."""
    with anyio.CancelScope(shield=True):
        await response.aclose()


class CompleteEndpoint:
    """`POST /v1/complete`, translated to `POST /v1/messages`."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        structlog.contextvars.clear_contextvars()
        client = Client(receive, send)
        headers = Headers(scope=scope)
        version = headers.get("anthropic-version")
        facts: dict[str, Any] = {"format": "v1" if version in (None, "2023-01-01") else "v2"}
        try:
            translation = await self._read(client, headers)
            facts.update(_request_facts(translation))
            await client.until_disconnect(
                lambda: self._forward(client, headers, translation, facts)
            )
        except ClientGone:
            pass
        except BridgeError as exc:
            facts["error_type"] = exc.error_type
            if client.status is None:
                await client.error(exc)
        except Exception:
            self.log.exception("complete.internal_error")
            if client.status is None:
                await client.error(BridgeError(INTERNAL["message"]))
        finally:
            self.log.info(
                "complete",
                status=client.status,
                client_disconnected=client.disconnected,
                **facts,
                **client.timings(),
            )

    async def _read(self, client: Client, headers: Headers) -> Translation:
        limit = self.bridge.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes")
        raw = await client.read_body(limit)
        try:
            body = orjson.loads(raw)
        except ValueError as exc:  # also nesting past 1024 levels, and unpaired surrogates
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
        return translate_request(body, self.bridge.settings.models)

    async def _forward(
        self, client: Client, headers: Headers, translation: Translation, facts: dict[str, Any]
    ) -> None:
        response = await self.bridge.upstream.send(
            "POST", "/v1/messages", translated_headers(headers.raw), dumps(translation.body)
        )
        try:
            facts["upstream_status"] = response.status_code
            facts["request_id"] = response.headers.get("request-id")
            relayed = relayed_headers(response)
            if response.status_code != 200:
                await _relay_error(client, response, relayed)
            elif translation.stream:
                await self._stream(client, response, relayed, translation, facts)
            else:
                await self._whole(client, response, relayed, translation, facts)
        finally:
            await closing(response)

    def _model(self, translation: Translation) -> str:
        if self.bridge.settings.echo_model:
            return translation.legacy_model
        return translation.body["model"]

    async def _whole(
        self,
        client: Client,
        response: httpx.Response,
        relayed: RawHeaders,
        translation: Translation,
        facts: dict[str, Any],
    ) -> None:
        try:
            message = orjson.loads(await read_all(response))
            usage = message.get("usage") or {}
            body = message_to_completion(
                message,
                model=self._model(translation),
                prefill=translation.conversation.prefill is not None,
                local_stops=translation.local_stops,
                v1=facts["format"] == "v1",
            )
        except (ValueError, AttributeError, TypeError):
            raise BadUpstreamResponse("upstream sent a response the bridge cannot read") from None
        facts.update(
            upstream_stop_reason=message.get("stop_reason"),
            stop_reason=body["stop_reason"],
            stop=body["stop"],
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
        if self.bridge.settings.log_text:
            facts.update(prompt=translation.prompt, completion=body["completion"])
        tokens = [
            (f"x-bridge-{kind}-tokens".encode(), str(usage[f"{kind}_tokens"]).encode())
            for kind in ("input", "output")
            if isinstance(usage.get(f"{kind}_tokens"), int)
        ]
        await client.respond(200, [JSON, *relayed, *tokens], dumps(body))

    async def _stream(
        self,
        client: Client,
        response: httpx.Response,
        relayed: RawHeaders,
        translation: Translation,
        facts: dict[str, Any],
    ) -> None:
        stream = CompletionStream(
            model=self._model(translation),
            v1=facts["format"] == "v1",
            prefill=translation.conversation.prefill is not None,
            local_stops=translation.local_stops,
            keep_text=self.bridge.settings.log_text,
        )
        await client.start(200, [SSE, NO_CACHE, *relayed])
        try:
            async for chunk in chunks(response):
                out = stream.feed(chunk)
                if out:
                    await client.write(out)
                if stream.done:
                    break
            else:
                await client.write(stream.flush())
        except BridgeError as exc:  # the upstream failed after our 200
            await client.write(stream.fail({"type": exc.error_type, "message": exc.message}))
        except Exception:  # a bug of ours must still end the stream as a failure
            self.log.exception("complete.stream_internal_error")
            await client.write(stream.fail(INTERNAL))
        finally:
            facts.update(
                upstream_stop_reason=stream.upstream_stop_reason,
                stop_reason=stream.stop_reason,
                stop=stream.stop,
                input_tokens=stream.input_tokens,
                output_tokens=stream.output_tokens,
                error_type=stream.error["type"] if stream.error else None,
            )
            if self.bridge.settings.log_text:
                facts.update(prompt=translation.prompt, completion=stream.text)
        await client.write(b"", more=False)


async def _relay_error(client: Client, response: httpx.Response, relayed: RawHeaders) -> None:
    """An upstream error before the first byte: same status, envelope and retry headers."""
    body = await read_all(response)
    try:
        envelope = orjson.loads(body)
        usable = envelope.get("type") == "error" and isinstance(envelope.get("error"), dict)
    except (ValueError, AttributeError):
        usable = False
    if not usable:
        status = response.status_code
        text = body.decode("utf-8", "replace").strip()[:200] or "no body"
        body = dumps(error_envelope(error_type_for_status(status), f"upstream said: {text}"))
    await client.respond(response.status_code, [JSON, *relayed], body)


def _request_facts(translation: Translation) -> dict[str, Any]:
    conversation = translation.conversation
    return {
        "legacy_model": translation.legacy_model,
        "upstream_model": translation.body["model"],
        "stream": translation.stream,
        "turns": conversation.turns,
        "system": conversation.system is not None,
        "prefill": conversation.prefill is not None,
        "adaptations": list(translation.adaptations),
    }


class PassthroughEndpoint:
    """Every other path goes to the upstream unchanged, streamed both ways."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        structlog.contextvars.clear_contextvars()
        client = Client(receive, send)
        path = scope.get("raw_path") or scope["path"].encode()
        target = path.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = Headers(scope=scope)
        forwarded = passthrough_headers(headers.raw)
        if "accept-encoding" not in headers:  # else httpx asks for gzip the client never did
            forwarded.append((b"accept-encoding", b"identity"))
        limit = self.bridge.settings.max_body_bytes
        streamed = "content-length" in headers or "transfer-encoding" in headers

        async def forward() -> None:
            content = client.body_chunks(limit) if streamed else await client.read_body(limit)
            response = await self.bridge.upstream.send(scope["method"], target, forwarded, content)
            try:
                await client.start(response.status_code, passthrough_headers(response.headers.raw))
                async for chunk in chunks(response, raw=True):
                    await client.write(chunk)
                await client.write(b"", more=False)
            except BridgeError as exc:
                if client.status is None:
                    raise
                # Headers are out: returning without finishing the body makes the server
                # close the connection, so the client sees a cut body, never a clean end.
                self.log.warning("passthrough.upstream_cut", error=exc.message)
            finally:
                await closing(response)

        try:
            await client.until_disconnect(forward)
        except ClientGone:
            pass
        except BridgeError as exc:
            if client.status is None:
                await client.error(exc)
        finally:
            self.log.info(
                "passthrough",
                method=scope["method"],
                path=scope["path"],
                status=client.status,
                client_disconnected=client.disconnected,
                **client.timings(),
            )
