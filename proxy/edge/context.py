"""The request context: pure ASGI around each endpoint that answers calls.

For every call it pins the config generation in force (a reload mid-call does not change
it), binds `call_id` (and, once routed, `route`) to every log line the call writes,
counts the call as active, turns any exception into the legacy error envelope (or a
stream's error ending, once a stream is under way), and emits the call's record once,
at the end (proxy/obs/record.py). The endpoint only fills the record and answers.
"""

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from proxy.edge.downstream import Client, ClientGone
from proxy.errors import INTERNAL_ERROR, BridgeError
from proxy.obs import log
from proxy.obs.record import CallRecord, Record
from proxy.obs.tracing import Tracing
from proxy.rollout.runtime import Runtime
from proxy.upstream.clock import Clock

R = TypeVar("R", bound=CallRecord)


@dataclass(slots=True)
class Inbound(Generic[R]):
    """One call as its endpoint gets it: the request, its client, its config, its record."""

    scope: Scope
    headers: Headers
    client: Client
    runtime: Runtime
    record: R
    bound: list[log.Bound]  # undone when the call ends

    def bind(self, **values: Any) -> None:
        """Put `values` on every log line the call writes from now on."""
        self.bound.append(log.bind(**values))


class Endpoint(Protocol[R]):
    def record(self, scope: Scope, headers: Headers) -> R:
        """The call's record as it starts."""

    async def handle(self, call: Inbound[R]) -> None:
        """Answer the call, filling its record (errors raised are answered here)."""


class Calls:
    """The calls in flight: per config generation (a reload closes what an old generation
    alone used once its calls are done), and in all (shutdown waits for them)."""

    def __init__(self) -> None:
        self.count = 0
        self._none = asyncio.Event()
        self._none.set()

    def enter(self, runtime: Runtime) -> None:
        runtime.active += 1
        self.count += 1
        self._none.clear()

    def leave(self, runtime: Runtime) -> None:
        runtime.active -= 1
        self.count -= 1
        if not self.count:
            self._none.set()

    async def end(self, within: float) -> None:
        """Wait (up to `within` seconds) for the calls in flight to end. At shutdown the
        calls cut at the drain deadline are still writing their answers (a 503, a
        stream's error event) and their log lines when the app is told to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._none.wait()


class Context(Protocol):
    """What the context needs of the bridge."""

    runtime: Runtime
    calls: Calls
    tracing: Tracing | None

    def emit(self, record: Record) -> None: ...


class CallContext(Generic[R]):
    """Pure ASGI: one endpoint, each of its calls in a context."""

    def __init__(
        self,
        bridge: Context,
        endpoint: Endpoint[R],
        client: Callable[[Receive, Send, Clock], Client] = Client,
    ) -> None:
        self.bridge = bridge
        self.endpoint = endpoint
        self.client = client  # another API's face (proxy/edge/bedrock_face.py)
        self.log = structlog.get_logger("complete-bridge")
        # Call ids: unique, not secret; os.urandom would be a system call a call.
        self._ids = random.Random()  # noqa: S311
        self._clock = Clock()  # when its calls start watching for a hang-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bridge, endpoint = self.bridge, self.endpoint
        runtime = bridge.runtime  # pinned: the whole call runs on this generation
        headers = Headers(scope=scope)
        client = self.client(receive, send, self._clock)
        record = endpoint.record(scope, headers)
        inbound = Inbound(scope, headers, client, runtime, record, [])
        inbound.bind(call_id=f"{self._ids.getrandbits(64):016x}")
        trace = None if bridge.tracing is None else bridge.tracing.start(scope, headers, inbound)
        bridge.calls.enter(runtime)
        try:
            await endpoint.handle(inbound)
        except ClientGone:
            pass
        except BridgeError as exc:  # ShuttingDown too: a call cut at the drain deadline
            record.error_type = exc.error_type
            await client.error(exc)
        except Exception:
            self.log.exception(f"{record.EVENT}.internal_error")
            record.error_type = "api_error"
            if client.status is None:
                await client.error(BridgeError(INTERNAL_ERROR))
        finally:
            bridge.calls.leave(runtime)
            record.status = client.status
            record.client_disconnected = client.disconnected
            record.ttfb_ms, record.duration_ms = client.timings()
            bridge.emit(record)
            if trace is not None:  # its span, from the record (proxy/obs/tracing.py)
                trace.finish(record)
            for token in reversed(inbound.bound):
                log.unbind(token)
