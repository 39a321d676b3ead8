"""The label values of the bridge's metrics: the closed sets each label draws from,
how a logged fact becomes a label value (anything outside a set becomes "other"), and
which (route, arm, mode) a config can produce, so their series can be created at 0.
"""

import math
from collections.abc import Iterable, Iterator
from typing import Any

from proxy.errors import ERROR_TYPES as ERROR_STATUSES
from proxy.rollout.routes import DEFAULT_ROUTE, FORCED, UNROUTED, Route

OTHER = "other"
ARMS = frozenset({"primary", "secondary"})
MODES = frozenset({"translate", "passthrough"})
FORMATS = frozenset({"v1", "v2"})
ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    }
)
ADAPTATIONS = frozenset(
    {
        "capped_max_tokens",
        "local_stop",
        "dropped_empty_stop",
        "dropped_temperature",
        "dropped_top_k",
        "dropped_top_p",
        "dropped_field",
    }
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SHADOW_RESULTS = ("exact", "normalised", "differs", "failed", "skipped")
# The statuses created at 0: success, the error table's, the bridge's 502 and 503 (also
# an overloaded upstream's), no answer. Others an upstream relays appear at their first
# event.
STATUSES = ("200", *sorted({str(s) for s in ERROR_STATUSES} | {"502", "503"}), "none")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "none")


def one_of(value: Any, allowed: frozenset[str], default: str) -> str:
    if value is None:
        return default
    return value if isinstance(value, str) and value in allowed else OTHER


def status_label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return str(value)
    return OTHER


def status_class_label(value: Any) -> str:
    code = status_label(value)
    return f"{code[0]}xx" if code.isdigit() else code


def token_count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def to_seconds(milliseconds: Any) -> float | None:
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float):
        return None
    if not math.isfinite(milliseconds) or milliseconds < 0:
        return None
    return milliseconds / 1000


def adaptation_kinds(adaptations: Any) -> Iterable[str]:
    """Adaptation kinds: the part before ":" (after it may be a client's field name)."""
    if not isinstance(adaptations, list | tuple):
        return ()
    return (
        one_of(item.split(":", 1)[0] if isinstance(item, str) else None, ADAPTATIONS, OTHER)
        for item in adaptations
    )


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
