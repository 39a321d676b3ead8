"""A raw asyncio HTTP/1.1 server on loopback, the base of the scripted upstreams: what they
write is exactly what reaches the bridge, faults below HTTP included. `read_request`
reads a request off a connection, `Wire` writes an answer on it."""

import asyncio
import socket
import struct
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
        # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say so (with proto
        # 0 each answer on a kept-alive connection waited ~40 ms for the client's ack).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


async def read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request off a raw connection, as the bridge sends it: method, target,
    headers (names lower-cased) and the body, chunked or not; None if the connection
    closed before a head."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")  # the blank line after the last chunk
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target, headers, body


class Wire:
    """Raw HTTP/1.1 answers on one connection; every write waits until it left."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()  # with write buffer limits of 0: until the kernel has it

    async def head(self, status: int, headers: dict[str, str]) -> None:
        await self.send(response_head(status, headers))

    async def chunk(self, data: bytes) -> None:
        await self.send(chunked(data))

    async def end(self) -> None:
        await self.send(b"0\r\n\r\n")

    async def dribble(self, data: bytes, seconds: float) -> None:
        """One byte per write, spread evenly over `seconds`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(len(data)):
            await self.send(data[i : i + 1])
            await asyncio.sleep(start + seconds * (i + 1) / len(data) - loop.time())

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


def response_head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status:03d} Fault", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join([*lines, "connection: close"]) + "\r\n\r\n").encode()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
