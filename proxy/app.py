"""create_app: the one place the bridge is assembled. No module-level state."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from proxy.access import Access
from proxy.config import Settings
from proxy.handlers import Bridge, CompleteEndpoint, PassthroughEndpoint
from proxy.upstream import Upstream


async def healthz(request: Request) -> JSONResponse:
    """Alive and serving; never calls the upstream."""
    return JSONResponse({"status": "ok"})


@dataclass(slots=True)
class Readiness:
    """Whether this instance should get new requests; false once it drains for shutdown."""

    draining: bool = False


async def readyz(request: Request) -> JSONResponse:
    if request.app.state.readiness.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """The bridge as an ASGI app; `transport` replaces the network (tests, demo);
    `environ` is where `env:` secret references are looked up."""
    access = Access.load(settings, environ or {})
    bridge = Bridge(settings=settings, upstream=Upstream(settings, transport), access=access)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await bridge.upstream.aclose()
            structlog.get_logger("complete-bridge").info("bridge.stopped")

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/v1/complete", CompleteEndpoint(bridge), methods=["POST"]),
            Mount("", app=PassthroughEndpoint(bridge)),
        ],
        lifespan=lifespan,
    )
    app.state.readiness = Readiness()
    return app
