"""One worker of `serve` with workers, in the child the supervisor forked
(proxy/workers.py): detached, its slot on every line it logs, the whole bridge
(proxy/serve.py) on the supervisor's sockets.

A slot's first worker serves the settings the bridge started with. A worker started
again in its slot (its predecessor died) serves the config as it is now, read and checked
as a reload reads it: its siblings applied every reload since the start, and so must it,
or the fleet would answer two ways. What takes effect on restart only (RESTART_ONLY:
port, log format, ...) stays as the bridge started, as on its siblings. A config that
does not load now is logged (`worker.config_rejected`) and the worker serves the start-up
settings: it still starts (status 2 would stop every worker), and its file watcher
applies the next change of the file, as its siblings' do.
"""

import contextlib
import ctypes
import io
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from proxy.commands import UsageError
from proxy.config.settings import ConfigError, Settings

PR_SET_PDEATHSIG = 1


def run_worker(
    slot: int,
    restart: bool,
    settings: Settings,
    environ: Mapping[str, str],
    reload: Callable[[], Settings] | None,
    config_path: Path | None,
    sockets: list[socket.socket],
) -> None:
    from proxy.obs.log import bind, start_failure
    from proxy.serve import serve

    _detach()
    bind(worker=slot)  # on every line this worker writes
    if restart:
        settings = settings_now(settings, environ, reload, config_path)
    try:
        serve(settings, environ, reload, config_path, sockets=sockets)
    except (ConfigError, UsageError) as exc:  # a bad secret: the same in every worker
        start_failure(str(exc), settings.log_format)
        raise SystemExit(2) from None


def settings_now(
    started: Settings,
    environ: Mapping[str, str],
    reload: Callable[[], Settings] | None,
    config_path: Path | None,
) -> Settings:
    """The config in force for a restarted worker: read by `reload` and checked as a
    reload checks it (secrets read), what takes effect on restart only kept from
    `started`; `started` if it does not load, with a warning line."""
    from proxy.config.file import locate
    from proxy.edge.reload import RESTART_ONLY
    from proxy.rollout.runtime import Runtime, UpstreamPool

    if reload is None:
        return started
    try:
        now = replace(reload(), **{name: getattr(started, name) for name in RESTART_ONLY})
        Runtime(now, environ, UpstreamPool(None), generation=1)  # reads secrets, checks routes
    except ConfigError as exc:
        import structlog

        structlog.get_logger("complete-bridge").warning(
            "worker.config_rejected",
            error=str(exc) if config_path is None else locate(exc, config_path),
            serving="the settings the bridge started with",
        )
        return started
    return now


def _detach() -> None:
    """A worker on its own: its own process group (a terminal's Ctrl-C goes to the
    supervisor only, which passes it on once), ended if the supervisor dies."""
    os.setpgid(0, 0)
    sys.stdout = WholeWrites(sys.stdout)  # workers share stdout: lines never interleave
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class WholeWrites(io.TextIOBase):
    """A text stream whose flush writes what was written since in one system call: the
    log flushes whole lines (proxy/obs/log.py), so two workers' lines never mix mid-line
    (a Python stream would write whenever its buffer fills, mid-line)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        data, self._parts = "".join(self._parts).encode(), []
        while data:
            data = data[os.write(self.fileno(), data) :]
