"""Routes: which way each legacy call goes, read from the config file's [[routes]].

A route matches on the legacy model, the caller's key fingerprint, `metadata.user_id`
or a request header (all it names must match; first match wins; a call no route
matches is translated). Its mode says what answers:

    translate     the bridge's translation (the default)
    passthrough   the legacy request, unchanged, to an upstream that still serves
                  /v1/complete
    canary        `percent` of callers get the secondary arm, the rest the primary;
                  sticky: a caller's share is a hash of the route and its key
                  fingerprint (or user id), the same on every replica and restart
    shadow        the primary answers; `percent` of calls also go to the secondary in
                  the background, and the two answers are compared in the log

An arm is a mode (translate or passthrough) with optional overrides: target model,
upstream URL and key, timeouts, body limit. `force_mode` (the kill switch) sends every
call one way, routes aside. Pure: no I/O here but reading secret files at load.
"""

import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODES = ("translate", "passthrough", "canary", "shadow")
ARM_MODES = ("translate", "passthrough")
STICKY = ("key", "user")
ARM_OVERRIDES = (
    "model",
    "upstream_url",
    "upstream_key",
    "connect_timeout",
    "first_byte_timeout",
    "idle_timeout",
    "max_body_bytes",
)


KeyPath = tuple[str | int, ...]  # as proxy/toml_lines.py: ("routes", 0, "match", "model")


class RouteError(ValueError):
    """A route that cannot be used; the message names it and the key, `at` is the path
    of the key (or of the table missing one) in the config file."""

    def __init__(self, message: str, at: KeyPath) -> None:
        super().__init__(message)
        self.at = at


@dataclass(frozen=True, slots=True)
class Arm:
    """A way to answer: a mode and what it overrides (None: the global setting)."""

    mode: str = "translate"
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ", ".join(
            f"{key}={'(secret)' if key == 'upstream_key' else value}"
            for key, value in self.overrides.items()
        )
        return f"{self.mode} ({extra})" if extra else self.mode


@dataclass(frozen=True, slots=True)
class Match:
    """What a call must have; an empty Match matches every call."""

    models: tuple[str, ...] = ()  # globs on the legacy model name
    keys: tuple[str, ...] = ()  # key fingerprints
    users: tuple[str, ...] = ()  # globs on metadata.user_id
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, value glob)

    def matches(self, call: "Call") -> bool:
        return (
            (not self.models or _glob(call.model, self.models))
            and (not self.keys or call.caller in self.keys)
            and (not self.users or _glob(call.user, self.users))
            and all(_glob(call.header(name), (glob,)) for name, glob in self.headers)
        )

    def describe(self) -> str:
        parts = [f"model={m}" for m in self.models] + [f"key={k}" for k in self.keys]
        parts += [f"user={u}" for u in self.users]
        parts += [f"header={name}: {glob}" for name, glob in self.headers]
        return " and ".join(parts)  # "": every call


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    mode: str = "translate"
    match: Match = field(default_factory=Match)
    primary: Arm = field(default_factory=Arm)
    secondary: Arm | None = None  # canary and shadow only
    percent: float = 0.0
    sticky: str = "key"

    def describe(self) -> str:
        if self.secondary is None:
            return self.primary.describe()
        share = "of callers" if self.mode == "canary" else "of calls, in the background"
        return (
            f"{self.mode}: {self.percent:g}% {share} to {self.secondary.describe()}; "
            f"the rest {self.primary.describe()}"
        )


DEFAULT_ROUTE = Route(name="default")
UNROUTED = "(unrouted)"  # the log's route for a call refused before it was routed
FORCED = "forced"  # the log's route for every call while the kill switch is on


@dataclass(frozen=True, slots=True)
class Call:
    """What routing looks at in a legacy call."""

    model: str
    caller: str | None  # key fingerprint
    user: str | None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def fingerprint(key: bytes | None) -> str | None:
    """A short, stable name for an API key that does not reveal it: 12 hex digits of
    its SHA-256 (48 bits: enough to tell a fleet's keys apart, useless for guessing)."""
    return hashlib.sha256(key).hexdigest()[:12] if key else None


def bucket(route: str, caller: str) -> float:
    """Where a caller falls in [0, 100) on a route: a stable hash, the same on every
    replica, so a canary caller stays on its arm."""
    digest = hashlib.sha256(f"{route}\0{caller}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True, slots=True)
class Choice:
    """Where a call goes: the route, the arm that answers, and a shadow arm (if any)."""

    route: Route
    arm_name: str  # "primary" or "secondary"
    arm: Arm
    shadow: Arm | None = None


def choose(
    routes: Iterable[Route], call: Call, force_mode: str = "", sample: float = 100.0
) -> Choice:
    """The first matching route's choice for `call`. `sample`, a random draw in
    [0, 100), decides a shadow (the call is shadowed when it is under the route's
    percent), and a canary for a caller with nothing to stick to."""
    if force_mode:
        return Choice(Route(name=FORCED, mode=force_mode), "primary", Arm(force_mode))
    route = next((r for r in routes if r.match.matches(call)), DEFAULT_ROUTE)
    if route.secondary is None:
        return Choice(route, "primary", route.primary)
    if route.mode == "canary":
        identity = (call.user or call.caller) if route.sticky == "user" else call.caller
        # A caller with no key (nor user) has nothing to stick to: each call is drawn.
        where = sample if identity is None else bucket(route.name, identity)
        if where < route.percent:
            return Choice(route, "secondary", route.secondary)
        return Choice(route, "primary", route.primary)
    shadow = route.secondary if sample < route.percent else None
    return Choice(route, "primary", route.primary, shadow)


def _glob(value: str | None, globs: Iterable[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, glob) for glob in globs)


# --- reading [[routes]] ------------------------------------------------------------------

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
