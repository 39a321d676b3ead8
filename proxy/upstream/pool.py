"""The upstream connection pool: aiohttp's, held to one rule: an answer is only ever read
for the request written on its connection.

aiohttp parses whatever arrives on a kept-alive connection while it sits in the pool,
and hands it to the next request sent on it as that request's answer: a stray response,
the `408` a server sends before it closes an idle connection, bytes left over from an
earlier answer. Here a connection is idle from when it goes back to the pool until a
request is sent on it. Bytes that arrive meanwhile close it at once (with a warning, no
content); one with bytes waiting, or closed by its peer, when taken from the pool is
discarded, and the call goes out on a fresh connection (as in Go's net/http). Whatever
aiohttp finds unfinished when an answer ends (its body not read to the end, a cut,
a hang-up) already makes it close that connection instead of pooling it.

Also: a framing error in the middle of a body (a bad chunk-size line) ends that body
with an error at once; aiohttp's C parser drops it, and the body's reader would wait
for bytes that never come (until idle_timeout).
"""

import asyncio
import functools
import select
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ConnectionKey


class _Connection(ResponseHandler):
    """aiohttp's protocol for one upstream connection, which knows when it is idle."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: Any) -> None:
        super().__init__(loop)
        self._log = log
        self.idle = True  # nothing asked of it yet
        self._poller: select.poll | None = None  # made on the first check, kept

    def set_response_params(self, **params: Any) -> None:
        self.idle = False  # a request goes out on it: what comes next is its answer
        super().set_response_params(**params)

    def data_received(self, data: bytes) -> None:
        if self.idle and data:
            self._log.warning("upstream.unsolicited_data", bytes=len(data))
            self.close()  # read by no one; the pool drops a closed connection
            return
        body = self._payload
        super().data_received(data)
        failure = self.exception()  # the parser failed on these bytes
        if failure is not None and body is not None and _unfinished(body):
            body.set_exception(aiohttp.ClientPayloadError("broken framing"), failure)

    def is_connected(self) -> bool:
        if not super().is_connected():
            return False
        return not (self.idle and self._readable())

    def _readable(self) -> bool:
        """Bytes wait on the socket, or its peer closed it (neither read by the loop yet)."""
        poller = self._poller
        if poller is None:
            sock = self.transport.get_extra_info("socket") if self.transport else None
            if sock is None:
                return False
            poller = self._poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))


def _unfinished(body: aiohttp.StreamReader) -> bool:
    return not body.is_eof() and body.exception() is None


class Pool(aiohttp.TCPConnector):
    """aiohttp's TCP connector, with connections that refuse what nobody asked for."""

    def __init__(self, log: Any, **options: Any) -> None:
        super().__init__(**options)
        connection: Callable[..., ResponseHandler] = _Connection
        self._factory = functools.partial(connection, loop=self._loop, log=log)

    def _release(
        self, key: ConnectionKey, protocol: ResponseHandler, *, should_close: bool = False
    ) -> None:
        if isinstance(protocol, _Connection):
            protocol.idle = True  # back in the pool (or closed by aiohttp just below)
        super()._release(key, protocol, should_close=should_close)
