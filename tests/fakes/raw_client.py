"""One raw HTTP/1.1 client connection for tests that need exact bytes on the wire:
what it sends is exactly what is given, and replies are parsed by hand."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

BOUND = 5  # seconds any reply (or the close) may take


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self, *, retry: bool = False) -> dict[str, str]:
        """The legacy error this bridge-made reply carries; x-should-retry says `retry`."""
        assert self.headers["content-type"] == "application/json"
        assert self.headers["x-should-retry"] == ("true" if retry else "false")
        envelope = json.loads(self.body)
        assert envelope["type"] == "error" and set(envelope["error"]) == {"type", "message"}
        error: dict[str, str] = envelope["error"]
        return error


class Connection:
    """One raw HTTP/1.1 connection: bytes out exactly as given, replies parsed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def to(cls, url: str) -> AsyncIterator["Connection"]:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def send(self, *parts: bytes) -> None:
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            self.sent += len(part)

    async def reply(self) -> Reply:
        async with asyncio.timeout(BOUND):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Reply(int(status_line.split()[1]), headers, body)

    async def closed(self) -> bool:
        """Whether the server has closed the connection (reads end, or are reset)."""
        try:
            async with asyncio.timeout(BOUND):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True


def head(
    target: str = "/healthz",
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), b"host: bridge"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"
