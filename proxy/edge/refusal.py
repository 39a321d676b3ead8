"""A refusal the server answers itself, before or instead of the app (proxy/edge/limits.py):
its status and legacy error envelope, and the bytes of the answer, which always closes
the connection.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

from proxy.translate.response import dumps, error_envelope

RETRY_AFTER = 1  # seconds a client refused for too many connections is asked to wait


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error_type: str
    message: str
    retry: bool = False  # x-should-retry: true, else false

    def answer(self, default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The whole HTTP/1.1 answer, after the server's default headers."""
        status = self.status
        body = dumps(error_envelope(self.error_type, self.message))
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"x-should-retry: %s\r\n" % (b"true" if self.retry else b"false"),
            *([b"retry-after: %d\r\n" % RETRY_AFTER] if status == 503 else []),
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body
