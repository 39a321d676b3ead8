"""Routes: which way each legacy call goes (the config file's [[routes]], read by
`proxy/rollout/route_tables.py`), and `choose`, which picks a call's route and arm.

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
call one way, routes aside. Pure: no I/O here.
"""

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# How an arm answers: translated to the Messages API, or passed on as it came.
Mode = Literal["translate", "passthrough"]
ArmName = Literal["primary", "secondary"]


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
    arm_name: ArmName
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
