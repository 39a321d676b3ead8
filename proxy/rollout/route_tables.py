"""Reading the config file's [[routes]] tables into `Route`s.

`parse_routes(raw, check_arm_value)` checks every key of every table and raises a
`RouteError` naming the route, the key and where it is in the file; an arm's overrides
are checked as the global settings of the same names. Pure: the check is injected.
"""

from collections.abc import Callable
from typing import Any

from proxy.rollout.routes import Arm, Match, Route

MODES = ("translate", "passthrough", "canary", "shadow")
ARM_MODES = ("translate", "passthrough")
STICKY = ("key", "user")
ARM_OVERRIDES = (
    "model",
    "upstream_url",
    "upstream_key",
    "upstream_aws_region",
    "connect_timeout",
    "first_byte_timeout",
    "idle_timeout",
    "max_body_bytes",
)


KeyPath = tuple[str | int, ...]  # as proxy/config/toml_lines.py: ("routes", 0, "match", "model")


class RouteError(ValueError):
    """A route that cannot be used; the message names it and the key, `at` is the path
    of the key (or of the table missing one) in the config file."""

    def __init__(self, message: str, at: KeyPath) -> None:
        super().__init__(message)
        self.at = at


Check = Callable[[str, Any], Any]  # (where, raw value) -> value, or RouteError


def parse_routes(raw: Any, check_arm_value: Check) -> tuple[Route, ...]:
    """The config file's `routes` array. `check_arm_value(key, value)` validates an
    override as the global setting of that name would be (and returns it parsed)."""
    if not isinstance(raw, list):
        raise RouteError("routes: expected [[routes]] tables", ("routes",))
    routes, names = [], set()
    for index, entry in enumerate(raw):
        at: KeyPath = ("routes", index)
        if not isinstance(entry, dict):
            raise RouteError(f"routes #{index + 1}: expected a [[routes]] table", at)
        name = entry.get("name")
        where = f"routes #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")
        route = _route(entry, where, at, check_arm_value)
        if route.name in names:
            raise RouteError(f"{where}: the name {route.name!r} is used twice", (*at, "name"))
        names.add(route.name)
        routes.append(route)
    return tuple(routes)


ROUTE_KEYS = ("name", "match", "mode", "percent", "sticky", "primary", "secondary")


def _route(entry: dict[str, Any], where: str, at: KeyPath, check: Check) -> Route:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise RouteError(f"{where}: name: expected a non-empty string", (*at, "name"))
    mode = entry.get("mode", "translate")
    if mode not in MODES:
        raise RouteError(
            f"{where}: mode: expected one of {', '.join(MODES)}, got {mode!r}", (*at, "mode")
        )
    arm_keys = set(entry) - set(ROUTE_KEYS)
    for key in sorted(arm_keys):
        if key not in ARM_OVERRIDES:
            known = ", ".join((*ROUTE_KEYS, *ARM_OVERRIDES))
            raise RouteError(f"{where}: unknown key {key!r} (known: {known})", (*at, key))
    match = _match(entry.get("match", {}), f"{where}: match", (*at, "match"))
    sticky = entry.get("sticky", "key")
    if sticky not in STICKY:
        raise RouteError(f"{where}: sticky: expected key or user, got {sticky!r}", (*at, "sticky"))
    if mode in ARM_MODES:
        for key in ("primary", "secondary", "percent"):
            if key in entry:
                raise RouteError(
                    f"{where}: {key}: only canary and shadow routes have it", (*at, key)
                )
        overrides = {key: entry[key] for key in arm_keys}
        arm = _arm({"mode": mode, **overrides}, where, at, check)
        return Route(name=name.strip(), mode=mode, match=match, primary=arm, sticky=sticky)
    if arm_keys:
        key = sorted(arm_keys)[0]
        raise RouteError(
            f"{where}: {key}: a {mode} route sets it in primary or secondary", (*at, key)
        )
    percent = entry.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise RouteError(
            f"{where}: percent: expected a number from 0 to 100, got {percent!r}", (*at, "percent")
        )
    arms = []
    for key in ("primary", "secondary"):
        if not isinstance(entry.get(key), dict):
            raise RouteError(
                f"{where}: {key}: a {mode} route needs a {key} = {{ mode = ... }}", (*at, key)
            )
        arms.append(_arm(entry[key], f"{where}: {key}", (*at, key), check))
    return Route(name.strip(), mode, match, arms[0], arms[1], float(percent), sticky)


def _arm(entry: dict[str, Any], where: str, at: KeyPath, check: Check) -> Arm:
    mode = entry.get("mode", "translate")
    if mode not in ARM_MODES:
        raise RouteError(
            f"{where}: mode: an arm is translate or passthrough, got {mode!r}", (*at, "mode")
        )
    overrides = {}
    for key, value in entry.items():
        if key == "mode":
            continue
        if key not in ARM_OVERRIDES:
            raise RouteError(
                f"{where}: unknown key {key!r} (known: mode, {', '.join(ARM_OVERRIDES)})",
                (*at, key),
            )
        if key == "model":
            if not isinstance(value, str) or not value.strip():
                raise RouteError(
                    f"{where}: model: expected a model name, got {value!r}", (*at, key)
                )
            overrides[key] = value.strip()
            continue
        try:
            overrides[key] = check(key, value)
        except ValueError as exc:
            raise RouteError(f"{where}: {key}: {exc}", (*at, key)) from None
    return Arm(mode, overrides)


def _match(raw: Any, where: str, at: KeyPath) -> Match:
    if not isinstance(raw, dict):
        raise RouteError(f'{where}: expected a table: match = {{ model = "claude-2*" }}', at)
    known = ("model", "key", "user", "header")
    for key in raw:
        if key not in known:
            raise RouteError(
                f"{where}: unknown key {key!r} (known: {', '.join(known)})", (*at, key)
            )
    values = {key: _strings(raw.get(key), f"{where}.{key}", (*at, key)) for key in known}
    for key in values["key"]:
        if len(key) != 12 or any(c not in "0123456789abcdef" for c in key):
            raise RouteError(  # not shown: the likely mistake is a key pasted here
                f"{where}.key: expected key fingerprints (12 lower-case hex digits; "
                "`complete-bridge fingerprint` prints a key's), not keys",
                (*at, "key"),
            )
    headers = []
    for text in values["header"]:
        name, colon, glob = text.partition(":")
        if not colon or not name.strip():
            raise RouteError(
                f'{where}.header: expected "name: value", got {text!r}', (*at, "header")
            )
        headers.append((name.strip().lower(), glob.strip()))
    return Match(values["model"], values["key"], values["user"], tuple(headers))


def _strings(raw: Any, where: str, at: KeyPath) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise RouteError(f"{where}: expected a string or a list of strings", at)
    return tuple(items)
