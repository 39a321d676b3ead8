"""A Messages upstream that holds its stream at a gate, for tests of what the bridge does
while an answer is under way (draining, disconnects, memory)."""

import asyncio

from tests.fakes.sse import delta, event

HEAD = event("message_start", message={"id": "msg_s", "usage": {"input_tokens": 1}}) + event(
    "content_block_start", index=0, content_block={"type": "text", "text": ""}
)
TAIL = event("message_delta", delta={"stop_reason": "end_turn"}) + event("message_stop")


class GatedUpstream:
    """A Messages upstream that sends its first delta, then waits for `gate` (or, with
    `hold_headers`, sends nothing at all), and notices when the bridge hangs up."""

    def __init__(self, *, hold_headers=False):
        self.hold_headers = hold_headers
        self.called = asyncio.Event()
        self.gate = asyncio.Event()
        self.closed = asyncio.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.called.set()
        watcher = asyncio.create_task(self._watch(receive), name="watch bridge disconnect")
        try:
            if self.hold_headers:
                await self.gate.wait()
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": HEAD + delta("first"), "more_body": True}
            )
            await self.gate.wait()
            await send({"type": "http.response.body", "body": delta(" second") + TAIL})
        finally:
            watcher.cancel()

    async def _watch(self, receive):
        while (await receive())["type"] != "http.disconnect":
            pass
        self.closed.set()
