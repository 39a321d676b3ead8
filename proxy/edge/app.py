"""create_app: the one place the bridge is assembled. No module-level state."""

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.config.settings import Settings
from proxy.edge.bedrock import BedrockEndpoint
from proxy.edge.bedrock_face import BedrockClient
from proxy.edge.bridge import Bridge
from proxy.edge.complete import CompleteEndpoint
from proxy.edge.context import CallContext
from proxy.edge.passthrough import PassthroughEndpoint
from proxy.edge.reload import Reloader, log_applied
from proxy.edge.scrape import MetricsEndpoint, MetricsListener
from proxy.obs.metrics import Metrics
from proxy.obs.tracing import start_tracing
from proxy.rollout.runtime import Runtime, UpstreamPool
from proxy.translate.response import dumps, error_envelope
from proxy.upstream.transport import Transport


async def healthz(request: Request) -> JSONResponse:
    """Alive and serving; never calls the upstream."""
    return JSONResponse({"status": "ok"})


async def unrouted(request: Request, exc: Exception) -> Response:
    """What no route takes (a target that is not a path: `OPTIONS *`; a path with a line
    break, where the router's patterns stop): a 404 in the legacy envelope."""
    body = dumps(error_envelope("not_found_error", "no such path"))
    return Response(body, 404, media_type="application/json")


@dataclass(slots=True)
class Readiness:
    """Whether this instance should get new requests; false once it drains for shutdown."""

    draining: bool = False


async def readyz(request: Request) -> JSONResponse:
    if request.app.state.readiness.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


class BridgeApp(Starlette):
    """Starlette, with `POST /v1/complete` (the hot path) dispatched straight to its
    request context: no router and no middleware frames in between, which cost several
    percent of a call's CPU. Everything else, and every request on `metrics_port`, goes
    through Starlette's routes."""

    complete: ASGIApp
    metrics_port: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/complete"
            and scope["method"] == "POST"
            and not (self.metrics_port and (scope.get("server") or ("", 0))[1] == self.metrics_port)
        ):
            await self.complete(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    transport: Transport | None = None,
    environ: Mapping[str, str] | None = None,
    reload: Callable[[], Settings] | None = None,
    config_path: Path | None = None,
) -> Starlette:
    """The bridge as an ASGI app; `transport` (an in-memory one, proxy/upstream/memory.py)
    replaces the network for tests;
    `environ` is where `env:` secret references are looked up. With `reload` (which
    reads the settings again), the config is reloaded on SIGHUP and when the file at
    `config_path` changes."""
    environ = environ or {}
    pool = UpstreamPool(transport)
    bridge = Bridge(Runtime(settings, environ, pool, generation=1), pool, Metrics())
    reloader = None if reload is None else Reloader(bridge, reload, environ, config_path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.open()
        if bridge.tracing is None:  # unless given (tests): None unless OTEL_* ask for it
            bridge.tracing = start_tracing(environ)  # proxy/obs/tracing.py
        log_applied(bridge.runtime, "start")
        watcher = None
        if reloader is not None:
            watcher = asyncio.get_running_loop().create_task(reloader.watch(), name="reload")
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await bridge.calls.end(within=5)  # what was cut at the drain deadline answers
            await bridge.shadows.aclose()
            await pool.aclose()
            if bridge.tracing is not None:
                bridge.tracing.shutdown()  # the spans still batched go out
            structlog.get_logger("complete-bridge").info("bridge.stopped")

    complete = CallContext(bridge, CompleteEndpoint(bridge))
    app = BridgeApp(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/v1/complete", complete, methods=["POST"]),
            Route(
                "/model/{model_id:path}/{operation}",
                CallContext(bridge, BedrockEndpoint(bridge), BedrockClient),
                methods=["POST"],
            ),
            Route("/metrics", MetricsEndpoint(bridge, settings.metrics_port), methods=["GET"]),
            Mount("", app=CallContext(bridge, PassthroughEndpoint(bridge))),
        ],
        middleware=[Middleware(MetricsListener, bridge=bridge, metrics_port=settings.metrics_port)],
        lifespan=lifespan,
        exception_handlers={404: unrouted},
    )
    app.complete, app.metrics_port = complete, settings.metrics_port
    app.state.readiness = Readiness()
    app.state.bridge = bridge
    app.state.reloader = reloader
    return app
