"""What the arms of `POST /v1/complete` share: the call on its way (`Exchange`), and
the detail of an internal error (a bug of ours, answered as an api_error)."""

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from proxy.config.settings import Settings
from proxy.edge.downstream import Client
from proxy.rollout.runtime import Runtime, Target
from proxy.rollout.shadow import Capture
from proxy.wire import ErrorDetail

INTERNAL: ErrorDetail = {
    "type": "api_error",
    "message": "internal error in the bridge; see its log",
}


@dataclass(slots=True)
class Exchange:
    """One legacy call on its way: who asked, on which config, answered by which arm."""

    client: Client
    headers: Headers
    runtime: Runtime
    facts: dict[str, Any]
    target: Target
    capture: Capture | None  # when the call is shadowed: the primary's answer

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def v1(self) -> bool:
        return bool(self.facts["format"] == "v1")
