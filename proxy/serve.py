"""`serve`: the app on bound sockets, in a uvicorn server with the connection limits,
that drains on SIGTERM/SIGINT. Heavy imports wait until it runs, so the other commands
start fast."""

import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType

from proxy.commands import UsageError
from proxy.config.settings import Settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# The cyclic collector's thresholds for a serving process: the first generation is
# collected every 20,000 net container allocations, not every 700. Almost everything a call
# allocates is freed by reference counting when it ends; at the default the collector
# ran every few calls and a full collection (about 20 ms) every thousand or so, a tenth
# of the bridge's CPU per call (bench/README.md).
GC_THRESHOLDS = (20_000, 20, 50)


def settle_gc() -> None:
    """Before serving: collect once, move what start-up made (modules, config, clients)
    out of the collector's sight for good, and collect less often from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(
    settings: Settings,
    environ: Mapping[str, str],
    reload: Callable[[], Settings] | None = None,
    config_path: Path | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """`sockets`: bound already, by the supervisor of workers (proxy/workers.py)."""
    # SIGHUP asks for a reload: ignored until the reloader takes it, as its default
    # (the end of the process) would end a bridge still starting (proxy/edge/reload.py).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from proxy.workers import private_metrics

    private_metrics()  # before prometheus_client: only a directory of our own
    import structlog
    import uvicorn

    from proxy.edge.app import create_app
    from proxy.edge.limits import BoundedHttpToolsProtocol
    from proxy.edge.listen import ListenError, bind
    from proxy.edge.serving_limits import serving_limits
    from proxy.edge.tls import serve_tls
    from proxy.obs.log import configure_logging, flush_logs
    from proxy.upstream.egress import shown

    # A bad secret reference stops us here.
    app = create_app(settings, environ=environ, reload=reload, config_path=config_path)
    try:
        if sockets is None:  # else bound by the supervisor of workers (proxy/workers.py)
            sockets = bind(settings.host, settings.port)  # a port in use stops us here
            if settings.metrics_port:  # one server on both: one drain, one stop (scrape.py)
                sockets += bind(settings.host, settings.metrics_port)
    except ListenError as exc:
        raise UsageError(str(exc)) from None
    app.state.bridge.write_record = configure_logging(settings.log_format)
    log = structlog.get_logger("complete-bridge")
    protocol = BoundedHttpToolsProtocol.with_limits(serving_limits(settings))

    class DrainingServer(uvicorn.Server):
        """On SIGTERM/SIGINT: fail readiness, stop accepting, let requests in flight
        finish for up to drain_timeout seconds, then stop."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not app.state.readiness.draining:
                app.state.readiness.draining = True
                log.info(
                    "bridge.draining",
                    signal=signal.Signals(sig).name,
                    deadline_s=settings.drain_timeout,
                )
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """uvicorn's, which re-raises the signal that stopped it when serving ends:
            the log's last lines (written once a loop turn, proxy/obs/log.py) are
            written first, as the signal ends the process unflushed."""
            with super().capture_signals():
                try:
                    yield
                finally:
                    flush_logs()
                    sys.stdout.flush()

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,  # httptools with bounds on heads, slow clients and connections
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the bridge never reads the client address
        log_level="warning",
        log_config=None,  # uvicorn's messages go through our log (configure_logging)
        timeout_graceful_shutdown=settings.drain_timeout,
    )
    serve_tls(config, app, settings)  # with tls_cert_file: TLS, its certificate reloadable
    log.info(
        "bridge.starting",
        upstream=settings.upstream_url,
        host=settings.host,
        port=settings.port,
        metrics_port=settings.metrics_port or None,
        **shown(settings.upstream_url, settings),  # the proxy with no password, the CAs
    )
    if settings.upstream_key and not settings.client_keys and settings.host not in LOOPBACK:
        log.warning(
            "bridge.open_upstream_key",
            hint="the bridge holds the upstream key and admits anyone who can reach "
            f"{settings.host}; set client_keys, or listen on 127.0.0.1",
        )
    settle_gc()
    try:
        DrainingServer(config).run(sockets)  # re-raises the signal that stopped it, once drained
    except KeyboardInterrupt:  # that was SIGINT: end by it, as by SIGTERM, with no traceback
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.raise_signal(signal.SIGINT)
