"""The in-memory transport: a handler called in process answers each request. `demo:`
runs on it (proxy/upstream/demo.py), and tests whose fault cannot be made on a socket.
"""

from collections.abc import Awaitable, Callable

from proxy.upstream.answer import Answer
from proxy.upstream.transport import Request

# Gets the request with its body read whole (bytes); answers, or raises one of ours.
Handler = Callable[[Request], Awaitable[Answer]]


class MemoryTransport:
    """A Transport whose upstream is `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def open(self) -> None:
        pass

    async def send(self, request: Request) -> Answer:
        content = request.content
        if not isinstance(content, bytes):
            content = b"".join([chunk async for chunk in content])
        return await self.handler(Request(request.method, request.url, request.headers, content))

    async def aclose(self) -> None:
        pass
