"""Where `GET /metrics` is served, and who may read it.

By default on the serving port, behind the same key check as every call: with
`client_keys` set, a scrape without a bridge-issued key gets 401. With `metrics_port`
set, the bridge also listens on that port, which serves `GET /metrics` without a key and
nothing else; the serving port then answers `/metrics` with 404, so metrics stay off the
public port (the usual Kubernetes layout: only the pod network reaches metrics_port).
"""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.edge.bridge import Bridge, admit
from proxy.edge.downstream import Client
from proxy.errors import BridgeError, NotFound


async def _serve(bridge: Bridge, client: Client) -> None:
    body, content_type = bridge.metrics.render()
    await client.respond(200, [(b"content-type", content_type.encode())], body)


class MetricsEndpoint:
    """`GET /metrics` on the serving port: a key when `client_keys` is set; 404 when the
    metrics have their own port."""

    def __init__(self, bridge: Bridge, metrics_port: int) -> None:
        self.bridge = bridge
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = Client(receive, send)
        try:
            admit(self.bridge.runtime, Headers(scope=scope))
            if self.metrics_port:
                raise NotFound(f"metrics are served on their own port ({self.metrics_port})")
        except BridgeError as exc:
            await client.error(exc)
            return
        await _serve(self.bridge, client)


class MetricsListener:
    """Requests that came in on `metrics_port` get `GET /metrics` (no key) or a 404;
    they never reach the bridge's endpoints. Every other request goes on to `app`."""

    def __init__(self, app: ASGIApp, bridge: Bridge, metrics_port: int) -> None:
        self.app = app
        self.bridge = bridge
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] == "http" else None
        if not self.metrics_port or not server or server[1] != self.metrics_port:
            await self.app(scope, receive, send)
            return
        client = Client(receive, send)
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            await _serve(self.bridge, client)
        else:
            await client.error(NotFound("this port serves GET /metrics only"))
