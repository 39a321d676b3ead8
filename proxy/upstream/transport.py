"""The transport interface: one attempt at one upstream request, and nothing else (no
retries, no timeouts of ours, no checks). Layered as httpx layers its transports:

    Upstream (proxy/upstream/client.py)      the public API the edge calls
      Retrying (proxy/upstream/retry.py)     retries within a budget
        Guarded (proxy/upstream/guards.py)   first-byte timeout, status and header checks
          a Transport                        the network (aiohttp) or in memory

The body's idle timeout and size cap are functions over the body iterator
(proxy/upstream/guards.py), applied by Upstream.chunks and Upstream.read_all.
"""

from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Protocol

from proxy.upstream.answer import Answer
from proxy.upstream.headers import RawHeaders


@dataclass(frozen=True, slots=True)
class Request:
    """One upstream request: `url` is the base URL and the target."""

    method: str
    url: str
    headers: RawHeaders
    content: bytes | AsyncIterable[bytes]


class Transport(Protocol):
    """Sends one request; returns once the status and headers are in. Fails with ours:
    UpstreamUnreachable, UpstreamTimeout; the answer's body too."""

    def open(self) -> None:
        """Make what the first request would make (at startup)."""

    async def send(self, request: Request) -> Answer: ...

    async def aclose(self) -> None: ...
