"""The floor: a bare pass-through on the bridge's own stack, with no translation.

A Starlette app on uvicorn (same uvicorn settings as `complete-bridge serve`) whose
pure-ASGI endpoint reads `POST /v1/messages`, forwards the bytes unchanged with an
aiohttp.ClientSession, and streams the answer back as it comes. Whatever the bridge costs
beyond this is the cost of translating (and of its logging and disconnect handling).

Its `POST /v1/complete` (non-streaming only) is the floor of translating on this stack:
the bridge's pure core (proxy/translate) turns the legacy body into a Messages body and
the whole answer back into a completion, and nothing else happens: no log line, metrics,
routes, limits, timeouts, retries or hang-up watch. The benchmark's `floor` rows.
"""

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from proxy.config.models import ModelTable
from proxy.translate.body import load_body
from proxy.translate.request import translate_request
from proxy.translate.response import dumps, message_to_completion

# Not forwarded either way: hop-by-hop, and what the HTTP clients set themselves.
SKIP = frozenset(
    {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te"}
)


async def read_body(receive: Receive) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


def forwarded(scope: Scope) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name not in SKIP
    ]


class Forward:
    """POST /v1/messages, relayed byte for byte."""

    def __init__(self, upstream_url: str) -> None:
        self.url = upstream_url.rstrip("/") + "/v1/messages"
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.session is not None
        body, headers = await read_body(receive), forwarded(scope)
        async with self.session.post(self.url, data=body, headers=headers) as response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (name.lower(), value)
                        for name, value in response.raw_headers
                        if name.lower() not in SKIP
                    ],
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class Translate:
    """POST /v1/complete, non-streaming: the legacy call translated by the bridge's core,
    and nothing more (the floor of translating)."""

    def __init__(self, forward: Forward) -> None:
        self.forward, self.models = forward, ModelTable()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.forward.session is not None
        translation = translate_request(load_body(await read_body(receive)), self.models)
        async with self.forward.session.post(
            self.forward.url, data=dumps(translation.body), headers=forwarded(scope)
        ) as response:
            message = orjson.loads(await response.read())
        completion = message_to_completion(
            message,
            model=translation.legacy_model,
            prefill=translation.conversation.prefill is not None,
            local_stops=translation.local_stops,
            v1=False,
        )
        body = dumps(completion)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(upstream_url: str) -> Starlette:
    forward = Forward(upstream_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=1000)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            forward.session = session
            yield

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/messages", forward, methods=["POST"]),
            Route("/v1/complete", Translate(forward), methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = uvicorn.Config(  # as proxy/serve.py configures the bridge
        create_app(args.upstream_url),
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
