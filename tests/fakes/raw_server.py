"""A raw asyncio server on loopback, the base of the scripted upstreams: what they write
is exactly what reaches the bridge, faults below HTTP included."""

import asyncio
import socket
from typing import Self


class RawServer:
    """Serves each connection with `serve`, in a task of its own, while entered (`url` is
    its address). On exit it stops listening and cancels the connections still open.
    `receive_buffer` (bytes) shrinks the listening socket's receive buffer, for a server
    slow to read."""

    receive_buffer: int | None = None

    def __init__(self) -> None:
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection; it is closed after."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        sock = socket.socket()
        if self.receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._connection, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the bridge left in the middle of an answer
        finally:
            writer.close()
            self._tasks.discard(task)
