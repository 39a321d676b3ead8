"""The label values of the bridge's metrics that the records do not close themselves
(methods, statuses, shadow results; the others are proxy/obs/record.py's), and
which (route, arm, mode) a config can produce, so their series can be created at 0.
"""

from collections.abc import Iterable, Iterator

from proxy.errors import ERROR_TYPES as ERROR_STATUSES
from proxy.rollout.routes import DEFAULT_ROUTE, FORCED, UNROUTED, Route

OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SHADOW_RESULTS = ("exact", "normalised", "differs", "failed", "skipped")
# The statuses created at 0: success, the error table's, the bridge's 502 and 503 (also
# an overloaded upstream's), no answer. Others an upstream relays appear at their first
# event.
STATUSES = ("200", *sorted({str(s) for s in ERROR_STATUSES} | {"502", "503"}), "none")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")


def status_label(value: int | None) -> str:
    if value is None:
        return "none"
    return str(value) if 100 <= value <= 599 else OTHER


def status_class_label(value: int | None) -> str:
    code = status_label(value)
    return f"{code[0]}xx" if code.isdigit() else code


def answering_arms(routes: Iterable[Route], force_mode: str) -> Iterator[tuple[str, str, str]]:
    """Every (route, arm, mode) a `complete` line can name with this config: each route's
    primary arm, a canary's secondary (a shadow's secondary is counted as comparisons),
    the kill switch's, calls no route matches and calls refused before routing."""
    yield UNROUTED, "primary", "translate"
    yield DEFAULT_ROUTE.name, "primary", DEFAULT_ROUTE.primary.mode
    if force_mode:
        yield FORCED, "primary", force_mode
    for route in routes:
        yield route.name, "primary", route.primary.mode
        if route.mode == "canary" and route.secondary is not None:
            yield route.name, "secondary", route.secondary.mode
