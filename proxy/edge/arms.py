"""The arms: the two ways a legacy call is answered, behind one interface.

    answer(call, client)   the call answered to the client, whole or streamed
    ask(call)              the whole answer, for a shadow comparison

`TranslateArm` (proxy/edge/translate_arm.py) sends `POST /v1/messages` and turns the
answer back into a completion; `PassthroughArm` (proxy/edge/passthrough_arm.py) passes
the call on as it came, and also serves every other path. The endpoint, a canary's two
arms and a shadow all go through this: each arm filters the headers and swaps the
credential in one place (`Target.outbound`) and holds the call to its own limits.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from proxy.edge.downstream import Client
from proxy.obs.record import CompleteRecord
from proxy.rollout.shadow import Capture, Reply
from proxy.upstream.headers import RawHeaders


@dataclass(slots=True)
class LegacyCall:
    """A `POST /v1/complete` call as an arm gets it."""

    headers: RawHeaders  # the client's
    body: dict[str, Any]  # the JSON body
    raw: bytes | bytearray  # the body as sent: what a pass-through sends when it can
    v1: bool  # the client speaks the 2023-01-01 stream format
    record: CompleteRecord  # what the arm learns goes here
    capture: Capture | None = None  # a shadowed call's: the answer, as it passes


class Arm(Protocol):
    async def answer(self, call: LegacyCall, client: Client) -> None:
        """Answer the call to the client (an upstream error relayed as it came)."""

    async def ask(self, call: LegacyCall) -> tuple[int, Reply | None]:
        """The secondary's status, and its text and stop reason when it answered 200."""
