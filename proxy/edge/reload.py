"""Hot reload: on SIGHUP, or when the config file changes, the config is read again,
checked, and swapped in whole. A config that does not load is refused with a log line
and the one in force stays. Requests in flight finish on the config they started with;
upstream clients only the old configs used are closed once their requests are done.
"""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from proxy.config.file import locate
from proxy.config.settings import ConfigError, Settings
from proxy.edge.bridge import Bridge
from proxy.rollout.routes import Arm, Route
from proxy.rollout.runtime import Runtime

POLL_SECONDS = 1.0
SignalHandler = Callable[[int, FrameType | None], Any] | int | None  # signal.getsignal's
# Settings that take effect on restart only: the server and its sockets keep the ones
# the bridge started with (a restarted worker keeps its siblings': proxy/worker_start.py).
RESTART_ONLY = (
    "host",
    "port",
    "metrics_port",
    "log_format",
    "drain_timeout",
    "header_timeout",
    "body_timeout",
    "max_client_connections",
    "workers",
)


class Reloader:
    def __init__(
        self,
        bridge: Bridge,
        load: Callable[[], Settings],
        environ: Mapping[str, str],
        path: Path | None,
    ) -> None:
        self.bridge = bridge
        self.load = load
        self.environ = environ
        self.path = path
        self.retiring: list[Runtime] = []  # older configs with requests still running
        # Called with each config applied: the server's TLS certificate (proxy/edge/tls.py).
        self.applied: list[Callable[[Settings], None]] = []
        self._stamp = self._file_stamp()
        self._log = structlog.get_logger("complete-bridge")

    def reload(self, source: str) -> bool:
        """Read, check and swap in the config; False (and the old one kept) if it fails."""
        old = self.bridge.runtime
        self._stamp = self._file_stamp()  # this file is now seen: the watcher skips it
        try:
            runtime = Runtime(self.load(), self.environ, self.bridge.pool, old.generation + 1)
        except ConfigError as exc:
            error = str(exc) if self.path is None else locate(exc, self.path)
            self._log.error("config.rejected", source=source, error=error)
            self.bridge.metrics.reloaded(applied=False)
            return False
        if _restart_only(old.settings) != _restart_only(runtime.settings):
            self._log.warning(
                "config.needs_restart",
                hint=f"{', '.join(RESTART_ONLY[:-1])} and {RESTART_ONLY[-1]} take effect "
                "on restart",
            )
        self.bridge.swap(runtime)
        self.retiring.append(old)
        self._log.info(
            "config.reloaded",
            generation=runtime.generation,
            source=source,
            routes=[route.name for route in runtime.routes],
            force_mode=runtime.settings.force_mode or None,
        )
        log_applied(runtime, source)
        self.bridge.metrics.reloaded(applied=True)
        for hook in self.applied:
            hook(runtime.settings)
        return True

    async def watch(self) -> None:
        """Every POLL_SECONDS: reload if the file changed; close the upstream clients no
        live config uses. Runs until cancelled."""
        loop = asyncio.get_running_loop()
        found = signal.getsignal(signal.SIGHUP)  # given back when done (ignored, in a bridge)
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform
            loop.add_signal_handler(signal.SIGHUP, self.reload, "sighup")
        try:
            while True:
                await asyncio.sleep(POLL_SECONDS)
                try:
                    stamp = self._file_stamp()
                    if stamp != self._stamp:
                        self._stamp = stamp
                        if stamp is not None:  # a file being replaced may be missing a moment
                            self.reload("file")
                    await self.sweep()
                except Exception:  # a bug here must not end reloads for good
                    self._log.exception("config.watch_failed")
        finally:
            _give_back(loop, found)

    async def sweep(self) -> None:
        self.retiring = [runtime for runtime in self.retiring if runtime.active]
        await self.bridge.pool.close_unused([self.bridge.runtime, *self.retiring])

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size


def _give_back(loop: asyncio.AbstractEventLoop, found: SignalHandler) -> None:
    """SIGHUP as it was before the loop took it: the loop would leave it at its default,
    the end of the process, and a SIGHUP while the bridge stops would end it there (its
    last calls unanswered, by SIGHUP rather than SIGTERM). Held in between, so that none
    lands on the default."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            if loop.remove_signal_handler(signal.SIGHUP) and found is not None:
                signal.signal(signal.SIGHUP, found)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def log_applied(runtime: Runtime, source: str) -> None:
    """The `config.applied` line: the routes in force and the kill switch, at start
    (source "start") and after every reload; `complete-bridge report` reads it for each
    route's stage. Arms say their mode and target model only: never a key or a URL."""
    structlog.get_logger("complete-bridge").info(
        "config.applied",
        generation=runtime.generation,
        source=source,
        force_mode=runtime.settings.force_mode or None,
        routes=[_applied(route) for route in runtime.routes],
    )


def _applied(route: Route) -> dict[str, object]:
    arms = {"primary": route.primary, "secondary": route.secondary}
    return {
        "name": route.name,
        "match": route.match.describe(),
        "mode": route.mode,
        "percent": route.percent if route.secondary is not None else None,
        "arms": {name: _arm(arm) for name, arm in arms.items() if arm is not None},
    }


def _arm(arm: Arm) -> dict[str, object]:
    return {"mode": arm.mode, "model": arm.overrides.get("model")}


def _restart_only(settings: Settings) -> tuple[object, ...]:
    return tuple(getattr(settings, name) for name in RESTART_ONLY)
