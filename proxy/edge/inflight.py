"""The budget of request bodies held in memory at once (`max_inflight_bytes`).

A `/v1/complete` call holds its body whole: the bytes as sent, the parsed JSON, the
translated request (docs/limits-and-faults.md, Memory: about 4 bytes of memory per body
byte, up to 12 for text Python stores at 4 bytes a character). The budget bounds the sum of the
bodies of the calls in flight, so that a few large bodies at once cannot take the
process past its memory limit. A body with a `content-length` is taken from the budget
whole before it is read; a chunked one chunk by chunk as it arrives. A call that would
go over is refused with 529 `overloaded_error` and `retry-after` (SDKs retry it), and
its reservation is given back when the call ends: until then its prompt is held (for
the log line, a shadow call, the local stop sequences).

Other paths stream their bodies to the upstream (a 64 KiB buffer each way) and take
nothing from it. The budget is the process's: calls of every config generation share
it; the limit is the one of the generation a call started on.
"""

from proxy.errors import Overloaded


class InflightBytes:
    """Bytes of request bodies held by the calls in flight."""

    def __init__(self) -> None:
        self.held = 0

    def hold(self, limit: int) -> "Hold":
        """A new call's share, on the budget `limit`."""
        return Hold(self, limit)


class Hold:
    """One call's share of the budget: taken as its body comes, given back at its end."""

    __slots__ = ("budget", "limit", "size")

    def __init__(self, budget: InflightBytes, limit: int) -> None:
        self.budget, self.limit, self.size = budget, limit, 0

    def take(self, size: int) -> None:
        """Take `size` more bytes; Overloaded if the budget has not that much left."""
        if self.budget.held + size > self.limit:
            raise Overloaded(
                f"the bridge holds as many request bytes as it may ({self.limit} bytes, "
                "max_inflight_bytes); retry shortly"
            )
        self.budget.held += size
        self.size += size

    def release(self) -> None:
        self.budget.held -= self.size
        self.size = 0
