"""Bounds on what one client connection may hold, enforced where its bytes arrive.

An ASGI app sees a request only once its head is in memory, and never sees a connection
that sends nothing, so these bounds live in uvicorn's httptools protocol, which the
bridge serves with. Every refusal is in the legacy error envelope, and closes the
connection.

- A request head (request line and headers) over MAX_HEAD_BYTES, or with more than
  MAX_HEADER_FIELDS fields: 431, before more than the bound is buffered. llhttp, the
  parser inside httptools, has no such limit and uvicorn sets none. The count is exact
  for a head that starts a read; one pipelined in the same read as the end of the request
  before it is counted from the end of that read (httptools does not say where in a read
  a request ended), so a head never holds more than twice the bound in memory.
- A head not complete within `header_timeout` of the connection opening (for a later
  request on a kept-alive connection: of its first byte): 408 `timeout_error`. A
  connection that sent nothing by then is closed without an answer, as uvicorn's
  `timeout_keep_alive` closes an idle kept-alive one.
- A body that goes `body_timeout` without a byte while the bridge is reading it (time the
  bridge itself holds off reading, pushing back on a slow upstream, does not count): 408
  `timeout_error`, or a plain close if an answer has already begun.
- Past `max_connections` client connections open at once, a new one is answered 503
  `overloaded_error` with `retry-after` as soon as its head is in. (uvicorn's own
  `limit_concurrency` counts tasks as well as connections and answers in plain text.)
- A request uvicorn cannot parse: 400 `invalid_request_error`.

A connection holds at most one timer (one `loop.call_later` handle), armed when a head
or a body starts and cancelled when it is complete, never re-armed per read: a body's
timer, when it fires, compares the time of the last read with the bound and waits for
the rest.
"""

import asyncio
from typing import Any, ClassVar, Literal

import structlog
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.config.settings import Settings
from proxy.edge.refusal import Refusal
from proxy.edge.serving_limits import ConnectionLimits

MAX_HEAD_BYTES = 64 * 1024  # Envoy's default is 60 KiB, Node's 16 KiB
MAX_HEADER_FIELDS = 256  # SDK requests carry about 15


class _Flow(FlowControl):
    """uvicorn's flow control, noting when reading resumes: a body's silence while the
    bridge was not reading is not the client's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transport)
        self._loop = loop
        self.resumed = 0.0

    def resume_reading(self) -> None:
        if self.read_paused:
            self.resumed = self._loop.time()
        super().resume_reading()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above: the settings' defaults, or
    those given to `with_limits`."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits.of(Settings())

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type["BoundedHttpToolsProtocol"]:
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_room: int | None = MAX_HEAD_BYTES  # None while a body is read
        self._fields = 0
        self._refusal: Refusal | None = None
        self._overloaded = False
        self._phase: Literal["idle", "head", "body"] = "idle"  # of the request being read
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _Flow(transport, self.loop)
        self._overloaded = len(self.connections) > self.limits.max_connections
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        self._feed(data)
        if self._timer is None and self._phase != "idle" and not self.transport.is_closing():
            timeout = self.limits.header_timeout
            self._arm(timeout if self._phase == "head" else self.limits.body_timeout)

    def _feed(self, data: bytes) -> None:
        while self._head_room is not None and len(data) > self._head_room:
            # Feed only what still fits: the head either ends in it or is too large.
            fits, data = data[: self._head_room], data[self._head_room :]
            self._head_room = 0
            super().data_received(fits)
            if self.transport.is_closing():  # uvicorn refused a malformed request
                return
            if self._head_room == 0 and self._refusal is None:
                message = f"request headers are larger than {MAX_HEAD_BYTES} bytes"
                self._refusal = Refusal(431, "invalid_request_error", message)
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
        if self._head_room is not None:
            self._head_room -= len(data)
        super().data_received(data)
        if self._refusal is not None and not self.transport.is_closing():
            self._refuse(self._refusal)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "head"

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            message = f"request has more than {MAX_HEADER_FIELDS} header fields"
            self._refusal = Refusal(431, "invalid_request_error", message)
            return  # not kept: the list stays bounded too
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._phase = "body"
        self._head_room = None
        if self._overloaded and self._refusal is None:
            message = (
                f"the bridge has {self.limits.max_connections} client connections open, "
                "its limit; retry shortly"
            )
            self._refusal = Refusal(503, "overloaded_error", message, retry=True)
        if self._refusal is None:  # else no call to the app; the parser's next calls are ignored
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is None:
            self._disarm()
            self._phase = "idle"
            super().on_message_complete()
            self._head_room, self._fields = MAX_HEAD_BYTES, 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in the legacy envelope. The
        parser can fail on a request the app already has, its head being in (a
        `transfer-encoding` that does not end in chunked, a broken chunk): the 400 is
        then its answer, and what the app would send is dropped."""
        refusal = Refusal(400, "invalid_request_error", msg)
        cycle = self.cycle
        if self._phase == "body" and not (cycle is None or cycle.response_started or self.pipeline):
            cycle.disconnected = True
            cycle.message_event.set()
            self._write(refusal)
        self._reject(refusal)

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "body":
            bound = self.limits.body_timeout
            quiet_since = max(self._last_read, self.flow.resumed)  # type: ignore[attr-defined]
            wait = quiet_since + bound - self.loop.time()
            if self.flow.read_paused or wait > 0:  # the bridge's turn, or not yet
                self._arm(bound if self.flow.read_paused else wait)
            else:
                self._body_timed_out(f"request body: no byte received for {bound:g} s")
        elif self.cycle is not None and not self.cycle.response_complete:
            self._arm(self.limits.header_timeout)  # a head pipelined behind an answer: after it
        elif self._phase == "head":
            message = f"request headers not received within {self.limits.header_timeout:g} s"
            self._refuse(Refusal(408, "timeout_error", message, retry=True))
        else:
            self.transport.close()  # nothing sent: no request to answer

    def _body_timed_out(self, message: str) -> None:
        refusal = Refusal(408, "timeout_error", message, retry=True)
        self._log(refusal)
        cycle = self.cycle
        if not cycle.response_started:  # else no 408 can be written into the answer
            cycle.disconnected = True  # the app's receive() says so; what it sends is dropped
            cycle.message_event.set()
            self._write(refusal)
        self.transport.close()

    def _refuse(self, refusal: Refusal) -> None:
        self._log(refusal)
        self._reject(refusal)

    @staticmethod
    def _log(refusal: Refusal) -> None:
        structlog.get_logger("complete-bridge").warning(
            "request.refused", status=refusal.status, reason=refusal.message
        )

    def _reject(self, refusal: Refusal) -> None:
        """Answer and close, the rest of the request unread; only close if a response is
        still going out on this connection (a pipelined request)."""
        if self.cycle is None or self.cycle.response_complete:
            self._write(refusal)
        self.transport.close()

    def _write(self, refusal: Refusal) -> None:
        self.transport.write(refusal.answer(self.server_state.default_headers))
