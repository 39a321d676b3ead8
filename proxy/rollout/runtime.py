"""One generation of the bridge's configuration, made concrete: the settings, the routes,
and for each arm the upstream client, key and limits it uses. A reload builds a new
Runtime and swaps it in whole; a request keeps the Runtime it started with.

Upstream clients outlive a generation when a new one asks for the same upstream with the
same timeouts (the pool reuses them); one no live generation uses is closed once the
requests of the generations that used it are done (see proxy/edge/reload.py).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, cast

from proxy.config.access import CREDENTIALS, Access, read_secret
from proxy.config.settings import ConfigError, Settings
from proxy.rollout.routes import Arm, Mode, Route
from proxy.upstream.client import Upstream
from proxy.upstream.headers import RawHeaders
from proxy.upstream.transport import Transport

# What an Upstream is made of: two arms that agree on these share one client.
_UPSTREAM_FIELDS = (
    "upstream_url",
    "connect_timeout",
    "first_byte_timeout",
    "idle_timeout",
    "max_body_bytes",
    "retries",
    "retry_budget",
    "retry_max_wait",
    "max_connections",
    "upstream_aws_region",
    "upstream_proxy",  # and how it is reached (proxy/upstream/egress.py)
    "upstream_ca_file",
    "upstream_client_cert",
    "upstream_client_key",
    "standard_environ",
)
assert set(_UPSTREAM_FIELDS) <= {f.name for f in fields(Settings)}


class UpstreamPool:
    """The upstream clients of every live generation, shared where they agree."""

    def __init__(self, transport: Transport | None) -> None:
        self._transport = transport
        self._clients: dict[tuple[Any, ...], Upstream] = {}

    def get(self, settings: Settings) -> Upstream:
        key = tuple(getattr(settings, name) for name in _UPSTREAM_FIELDS)
        if key not in self._clients:
            self._clients[key] = Upstream(settings, self._transport)
        return self._clients[key]

    def open(self) -> None:
        for client in self._clients.values():
            client.open()

    async def close_unused(self, live: Iterable["Runtime"]) -> None:
        """Close the clients no live generation uses."""
        used = {id(client) for runtime in live for client in runtime.upstreams()}
        # Out of the pool first, then closed: a reload during a close gets new clients.
        unused = [key for key, client in self._clients.items() if id(client) not in used]
        for client in [self._clients.pop(key) for key in unused]:
            await client.aclose()

    async def aclose(self) -> None:
        """Close every client, and the transport given (the app owns it)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        if self._transport is not None:
            await self._transport.aclose()


@dataclass(frozen=True, slots=True)
class Target:
    """An arm made concrete: how it answers, where, with which key and limits."""

    mode: Mode
    model: str | None  # the target model (translate) or legacy model (passthrough) to use
    upstream: Upstream
    max_body_bytes: int
    key: bytes | None  # the upstream key this arm spends, else the global rule applies
    access: Access

    def outbound(self, headers: RawHeaders) -> RawHeaders:
        """Upstream request headers: the arm's key, the bridge's, or the client's."""
        if self.key is None:
            return self.access.outbound(headers)
        kept = [(name, value) for name, value in headers if name.lower() not in CREDENTIALS]
        kept.append((b"x-api-key", self.key))
        return kept


class Runtime:
    """The configuration requests run on: swapped whole on reload, never changed."""

    def __init__(
        self, settings: Settings, environ: Mapping[str, str], pool: UpstreamPool, generation: int
    ) -> None:
        self.settings = settings
        self.generation = generation
        self.active = 0  # requests (and shadow calls) running on this generation
        self.access = Access.load(settings, environ)
        self.routes = settings.routes
        self.upstream = pool.get(settings)  # the global one: pass-through of other paths
        # The plain modes, on the global settings: for calls no route matches, and for
        # the kill switch.
        self._plain = {
            mode: self._target(Arm(mode), settings, environ, pool)
            for mode in ("translate", "passthrough")
        }
        self._targets: dict[int, Target] = {}  # by id: looked up by the arm itself
        for number, route in enumerate(self.routes, 1):
            arms = {"primary": route.primary, "secondary": route.secondary}
            for name, arm in arms.items():
                if arm is None:
                    continue
                try:
                    self._targets[id(arm)] = self._target(arm, settings, environ, pool)
                except ConfigError as exc:
                    arm_at = (name,) if route.secondary is not None else ()
                    at = ("routes", number - 1, *arm_at, *exc.at)
                    where = f"{name}: " if arm_at else ""
                    message = f"routes #{number} ({route.name}): {where}{exc}"
                    raise ConfigError(message, at) from None
        # The most any arm reads of a request body: read that much, then hold each to its own.
        targets = [*self._plain.values(), *self._targets.values()]
        self.max_body_bytes = max(t.max_body_bytes for t in targets)
        if settings.max_inflight_bytes < self.max_body_bytes:
            raise ConfigError(
                f"max_inflight_bytes: expected at least max_body_bytes ({self.max_body_bytes}"
                f", the largest of any arm), got {settings.max_inflight_bytes}: a body at the "
                "limit could never be served",
                ("max_inflight_bytes",),
            )

    def _target(
        self, arm: Arm, settings: Settings, environ: Mapping[str, str], pool: UpstreamPool
    ) -> Target:
        upstream_settings = {k: v for k, v in arm.overrides.items() if k in _UPSTREAM_FIELDS}
        key = None
        if "upstream_key" in arm.overrides:
            key = read_secret(arm.overrides["upstream_key"], environ, "upstream_key").encode()
        return Target(
            mode=cast(Mode, arm.mode),  # one of the two: the config reader checks it
            model=arm.overrides.get("model"),
            upstream=pool.get(replace(settings, **upstream_settings)),
            max_body_bytes=arm.overrides.get("max_body_bytes", settings.max_body_bytes),
            key=key,
            access=self.access,
        )

    def target(self, arm: Arm) -> Target:
        """A route's arm's target; for any other arm (no route matched, or the kill
        switch), its plain mode's."""
        return self._targets.get(id(arm)) or self._plain[arm.mode]

    def upstreams(self) -> list[Upstream]:
        targets = [*self._plain.values(), *self._targets.values()]
        return [self.upstream, *(t.upstream for t in targets)]

    def describe(self) -> list[dict[str, str]]:
        """The routes as check-config prints them, in the order they are tried."""
        rows = [_row(route) for route in self.routes]
        rows.append({"name": "(no route matched)", "match": "", "answer": "translate"})
        return rows


def _row(route: Route) -> dict[str, str]:
    return {"name": route.name, "match": route.match.describe(), "answer": route.describe()}
