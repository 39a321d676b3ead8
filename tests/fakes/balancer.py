"""A Kubernetes Service in miniature, for the rollout test: a TCP balancer on loopback
that spreads new connections round-robin over its endpoints (as kube-proxy does), whose
endpoints the test adds and removes as the endpoint controller would (a pod in once
ready, out once deleted). A connection stays on the endpoint it was opened to."""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator


class Balancer:
    def __init__(self) -> None:
        self.endpoints: list[int] = []  # backend ports on 127.0.0.1
        self.fewest: int | None = None  # the fewest endpoints left by a removal
        self.connections: dict[int, int] = {}  # port: connections sent there
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, port: int) -> None:
        self.endpoints.append(port)

    def remove(self, port: int) -> None:
        self.endpoints.remove(port)
        left = len(self.endpoints)
        self.fewest = left if self.fewest is None else min(self.fewest, left)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.endpoints:  # no endpoint: refused, as a Service with none
            writer.close()
            return
        port = self.endpoints[next(self._turn) % len(self.endpoints)]
        self.connections[port] = self.connections.get(port, 0) + 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                end.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await end.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        """Listen on a free loopback port; yield it."""
        server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the end on (half-close)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
