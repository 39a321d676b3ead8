"""The connection limits the bridge serves with: the settings' bounds on one client
connection and on how many are open, fitted to the process's open-files limit (raised
as far as it may go) so that every connection the bridge accepts is one it can hold.
proxy/edge/limits.py enforces them.
"""

import resource
from dataclasses import dataclass, replace

import structlog

from proxy.config.settings import Settings

SPARE_FILES = 64  # open files kept for what is not a connection: logs, the listener, epoll
NO_FILE_LIMIT = 1 << 20  # Linux's default nr_open, the most a soft limit can be


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> "ConnectionLimits":
        return cls(settings.header_timeout, settings.body_timeout, settings.max_client_connections)


def open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (each connection
    is a file); the soft limit before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return NO_FILE_LIMIT, NO_FILE_LIMIT
    wanted = NO_FILE_LIMIT if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft, soft
    return soft, max(soft, wanted)


def serving_limits(settings: Settings) -> ConnectionLimits:
    """The settings' limits, the open-files limit raised to hold them (logged). Every
    client and upstream connection is an open file: if the limit cannot be raised that
    far, max_client_connections is lowered to what fits, with a warning, so that a
    client past it gets a 503 instead of the listener failing to accept."""
    log = structlog.get_logger("complete-bridge")
    before, files = open_files_limit()
    if files != before:
        log.info("bridge.open_files_raised", soft_limit_before=before, soft_limit=files)
    limits = ConnectionLimits.of(settings)
    fits = max(1, files - settings.max_connections - SPARE_FILES)
    if fits < limits.max_connections:
        log.warning(
            "bridge.client_connections_lowered",
            max_client_connections=fits,
            configured=limits.max_connections,
            open_files_limit=files,
            hint="raise the hard limit on open files (ulimit -Hn; LimitNOFILE, or the "
            f"container runtime's nofile) to at least "
            f"{limits.max_connections + settings.max_connections + SPARE_FILES}",
        )
        limits = replace(limits, max_connections=fits)
    return limits
