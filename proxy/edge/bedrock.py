"""Bedrock's legacy Claude calls: `POST /model/{modelId}/invoke` and
`/model/{modelId}/invoke-with-response-stream` with a Text Completions body
(docs/bedrock.md).

A Bedrock call is a `/v1/complete` call in another envelope: `BedrockEndpoint` is the
`/v1/complete` endpoint (proxy/edge/complete.py: admitted, read, routed on the legacy
model id, answered by its arm, shadowed, logged) with Bedrock's way in (its callers'
credentials, proxy/edge/bedrock_access.py; its body, proxy/translate/bedrock.py), and
its client, a `BedrockClient` (proxy/edge/bedrock_face.py), puts what the call answers in
Bedrock's shapes on the way out.
"""

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

from proxy.edge import bedrock_access
from proxy.edge.bedrock_face import BedrockClient
from proxy.edge.complete import CompleteEndpoint
from proxy.edge.context import Inbound
from proxy.errors import NotFound
from proxy.obs.record import CompleteRecord
from proxy.rollout.runtime import Runtime
from proxy.translate.bedrock import OPERATIONS, legacy_body
from proxy.translate.body import load_body
from proxy.translate.response import dumps
from proxy.upstream.headers import MESSAGES_VERSION, RawHeaders

# The caller's headers an arm may see: never its credentials (a SigV4 signature, a bearer
# key for the bridge) nor the signature's companions; the upstream key is the bridge's.
_KEPT = frozenset({b"user-agent", b"anthropic-beta"})


def model_id(scope: Scope) -> str:
    """The model id of the path (decoded: boto3 escapes its `:`); a foundation model's
    ARN by its id."""
    return str(scope["path_params"]["model_id"]).rpartition("/")[2]


class BedrockEndpoint(CompleteEndpoint):
    """`POST /model/{modelId}/invoke[-with-response-stream]`, in its request context."""

    def record(self, scope: Scope, headers: Headers) -> CompleteRecord:
        return CompleteRecord(format="v2", bedrock_model=model_id(scope))

    def admit(self, runtime: Runtime, headers: Headers) -> None:
        bedrock_access.admit(runtime.access, headers)

    def caller_key(self, headers: Headers) -> bytes | None:
        """A signed call's access key id (what `client_keys` does not know), else its key."""
        return bedrock_access.access_key_id(headers) or super().caller_key(headers)

    def load(
        self, inbound: Inbound[CompleteRecord], raw: bytearray
    ) -> tuple[dict[str, Any], bytes | bytearray, RawHeaders]:
        scope, record, client = inbound.scope, inbound.record, inbound.client
        if isinstance(client, BedrockClient):
            client.answer.record = record  # its token counts go in Bedrock's headers
        bedrock_access.verify(inbound.runtime.access, scope, inbound.headers, raw)
        operation = scope["path_params"]["operation"]
        if operation not in OPERATIONS:
            raise NotFound(f"no such operation: {operation}")
        assert record.bedrock_model is not None
        body = legacy_body(load_body(raw), record.bedrock_model, stream=OPERATIONS[operation])
        headers = [(n, v) for n, v in inbound.headers.raw if n.lower() in _KEPT]
        headers.append((b"anthropic-version", MESSAGES_VERSION.encode()))  # v2 events
        return body, dumps(body), headers
