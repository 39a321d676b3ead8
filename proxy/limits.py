"""A bound on each request head (request line and headers), enforced where bytes arrive.

llhttp, the parser inside httptools, has no limit on headers and uvicorn sets none: a
request with 100 MB of headers was read whole into memory, then served. An ASGI app
cannot help (it sees the headers once all of them are in memory), so the check lives in
uvicorn's httptools protocol: a head is fed to the parser only while it fits, and one
that does not is answered 431, in the legacy envelope, and the connection closed. The
requests uvicorn itself refuses as malformed get the legacy envelope too.

The count is exact for a head that starts a read. One that is pipelined in the same read
as the end of the request before it is counted from the end of that read (httptools does
not say where in a read a request ended), so it may pass the bound by up to one read; a
head never holds more than twice the bound in memory.
"""

from http import HTTPStatus
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.translate.response import dumps, error_envelope

MAX_HEAD_BYTES = 64 * 1024  # Envoy's default is 60 KiB, Node's 16 KiB
MAX_HEADER_FIELDS = 256  # SDK requests carry about 15


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a head over MAX_HEAD_BYTES or with more
    than MAX_HEADER_FIELDS fields before more than the limit is buffered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_room: int | None = MAX_HEAD_BYTES  # None while a body is read
        self._fields = 0
        self._refusal: str | None = None

    def data_received(self, data: bytes) -> None:
        while self._head_room is not None and len(data) > self._head_room:
            # Feed only what still fits: the head either ends in it or is too large.
            fits, data = data[: self._head_room], data[self._head_room :]
            self._head_room = 0
            super().data_received(fits)
            if self.transport.is_closing():  # uvicorn refused a malformed request
                return
            if self._head_room == 0 and self._refusal is None:
                self._refusal = f"request headers are larger than {MAX_HEAD_BYTES} bytes"
            if self._refusal is not None:
                self._refuse()
                return
        if self._head_room is not None:
            self._head_room -= len(data)
        super().data_received(data)
        if self._refusal is not None and not self.transport.is_closing():
            self._refuse()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            self._refusal = f"request has more than {MAX_HEADER_FIELDS} header fields"
            return  # not kept: the list stays bounded too
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_room = None
        if self._refusal is None:  # else no call to the app; the parser's next calls are ignored
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is None:
            super().on_message_complete()
            self._head_room, self._fields = MAX_HEAD_BYTES, 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in the legacy envelope."""
        self._reject(400, msg)

    def _refuse(self) -> None:
        structlog.get_logger("complete-bridge").warning(
            "request.refused", status=431, reason=self._refusal
        )
        self._reject(431, self._refusal or "")

    def _reject(self, status: int, message: str) -> None:
        """Answer `status` and close, the rest of the request unread; only close if a
        response is still going out on this connection (a pipelined request)."""
        if self.cycle is None or self.cycle.response_complete:
            body = dumps(error_envelope("invalid_request_error", message))
            head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
            head += [
                name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
            ]
            head += [
                b"content-type: application/json\r\n",
                b"x-should-retry: false\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()
