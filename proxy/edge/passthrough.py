"""Every path but `POST /v1/complete` goes to the upstream unchanged, streamed both ways,
through the pass-through arm of the global settings (proxy/edge/passthrough_arm.py)."""

from starlette.datastructures import Headers
from starlette.types import Scope

from proxy.edge.bridge import Bridge, admit
from proxy.edge.context import Inbound
from proxy.edge.downstream import refuse_declared_over
from proxy.edge.passthrough_arm import PassthroughArm
from proxy.obs.record import PassthroughRecord
from proxy.rollout.routes import Arm
from proxy.upstream.path import upstream_target


class PassthroughEndpoint:
    """Every other path, in its request context."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def record(self, scope: Scope, headers: Headers) -> PassthroughRecord:
        return PassthroughRecord(method=scope["method"], path=scope["path"])

    async def handle(self, inbound: Inbound[PassthroughRecord]) -> None:
        scope, headers, client, runtime = (
            inbound.scope, inbound.headers, inbound.client, inbound.runtime
        )  # fmt: skip
        admit(runtime, headers)
        path = scope.get("raw_path") or scope["path"].encode()
        target = upstream_target(path, scope.get("query_string", b""))
        passing = PassthroughArm(runtime.target(Arm("passthrough")), runtime.settings)
        limit = passing.target.max_body_bytes
        refuse_declared_over(headers, limit)
        streamed = "content-length" in headers or "transfer-encoding" in headers

        async def forward() -> None:
            content = (
                client.body_chunks(limit) if streamed else bytes(await client.read_body(limit))
            )
            await passing.forward(
                scope["method"], target, headers.raw, content, client, inbound.record
            )

        await client.until_disconnect(forward)
