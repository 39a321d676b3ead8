"""Pass-through: every path but `POST /v1/complete` goes to the upstream unchanged,
streamed both ways; `relay` also serves a legacy call a route passes on as it came."""

from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from proxy.edge.bridge import Bridge, admit
from proxy.edge.downstream import Client, ClientGone, refuse_declared_over
from proxy.errors import BridgeError
from proxy.rollout.shadow import Capture
from proxy.upstream.answer import Answer, closing
from proxy.upstream.client import Upstream
from proxy.upstream.headers import passthrough_headers
from proxy.upstream.path import upstream_target


async def relay(
    client: Client,
    upstream: Upstream,
    response: Answer,
    log: Any,
    capture: Capture | None = None,
) -> None:
    """An upstream answer to the client as it comes, headers and body, unchanged."""
    try:
        await client.start(response.status_code, passthrough_headers(response.raw_headers))
        async for chunk in upstream.chunks(response):
            if capture is not None:
                capture.add(chunk)
            await client.write(chunk)
        await client.write(b"", more=False)
    except BridgeError as exc:
        if client.status is None:
            raise
        # Headers are out: returning without finishing the body makes the server close
        # the connection, so the client sees a cut body, never a clean end.
        log.warning("passthrough.upstream_cut", error=exc.message)
    finally:
        await closing(response)


class PassthroughEndpoint:
    """Every other path goes to the upstream unchanged, streamed both ways."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.log = structlog.get_logger("complete-bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.bridge.runtime
        client = Client(receive, send)
        path = scope.get("raw_path") or scope["path"].encode()
        headers = Headers(scope=scope)
        forwarded = runtime.access.outbound(passthrough_headers(headers.raw))
        limit = runtime.settings.max_body_bytes
        streamed = "content-length" in headers or "transfer-encoding" in headers

        async def forward(target: str) -> None:
            content = (
                client.body_chunks(limit) if streamed else bytes(await client.read_body(limit))
            )
            try:
                response = await runtime.upstream.send(
                    scope["method"], target, forwarded, content, raw=True
                )
            except BridgeError:
                # The upstream client reads a streamed body: what stopped it may be ours.
                client.raise_body_failure()
                raise
            await relay(client, runtime.upstream, response, self.log)

        error_type = None
        runtime.active += 1
        self.bridge.call_started()
        try:
            admit(runtime, headers)
            target = upstream_target(path, scope.get("query_string", b""))
            refuse_declared_over(headers, limit)
            await client.until_disconnect(lambda: forward(target))
        except ClientGone:
            pass
        except BridgeError as exc:  # ShuttingDown too: a call cut at the drain deadline
            error_type = exc.error_type
            await client.error(exc)
        finally:
            runtime.active -= 1
            self.bridge.call_ended()
            self.bridge.record(
                "passthrough",
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": client.status,
                    "client_disconnected": client.disconnected,
                    "error_type": error_type,
                    **client.timings(),
                },
            )
