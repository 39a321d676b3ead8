"""`serve` with `workers` > 1: a supervisor process binds the listening sockets once and
forks that many workers, each a whole bridge (proxy/serve.py) accepting on the same
sockets, as uvicorn's and gunicorn's do. The supervisor serves nothing itself:

- SIGHUP is passed to every worker: each reloads (and logs its config.applied or
  config.rejected); a config file change is seen by each worker's own watcher.
- SIGTERM or SIGINT is passed on as SIGTERM: every worker drains within drain_timeout;
  one still running a few seconds past it is killed. Then the supervisor ends by the
  signal it got, as a single bridge does.
- A worker that dies is logged (`worker.exited`) and started again in its slot, on the
  config in force now (proxy/worker_start.py); one that exits 2 (refused to start: a bad
  secret) stops them all, with 2.
- Metrics are summed across workers by prometheus_client's multiprocess mode, in a
  directory this supervisor creates (mkdtemp: private to this instance, never shared
  with another bridge on the host) and removes when it stops; /metrics of any worker
  shows the sums (proxy/obs/multiprocess.py). Counters and histograms of a dead worker
  still count. The bridge has no gauge; one added must say its multiprocess_mode
  (`livesum`: the sum over live workers, as in-flight calls would be).
Every line a worker logs carries `worker` (its slot, 0 to N-1).
"""

import contextlib
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from proxy.commands import UsageError
from proxy.config.settings import Settings

# Read when prometheus_client is imported: set before, so never import it here first.
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_METRICS_VARIABLE = "COMPLETE_BRIDGE_WORKERS_METRICS_DIR"
KILL_AFTER = 5  # seconds past drain_timeout before a worker still running is killed
MIN_LIFE = 1.0  # a worker that dies younger is restarted after this long, not at once
HANDLED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM}  # by the supervisor


def supervise(
    settings: Settings,
    environ: Mapping[str, str],
    reload: Callable[[], Settings] | None = None,
    config_path: Path | None = None,
) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until passed on to workers (run)
    import structlog

    from proxy.edge.listen import ListenError, bind
    from proxy.obs.log import configure_logging

    try:
        sockets = bind(settings.host, settings.port)
        if settings.metrics_port:
            sockets += bind(settings.host, settings.metrics_port)
    except ListenError as exc:
        raise UsageError(str(exc)) from None
    configure_logging(settings.log_format)
    log = structlog.get_logger("complete-bridge")
    metrics_dir = tempfile.mkdtemp(prefix="complete-bridge-metrics-")
    os.environ[MULTIPROC_VARIABLE] = metrics_dir  # before any worker imports prometheus_client
    os.environ[WORKERS_METRICS_VARIABLE] = metrics_dir  # ours (proxy/obs/multiprocess.py)
    log.info("workers.starting", workers=settings.workers, metrics_dir=metrics_dir)

    def worker(slot: int, restart: bool) -> None:
        """In the forked child: the whole bridge on the supervisor's sockets."""
        from proxy.worker_start import run_worker

        run_worker(slot, restart, settings, environ, reload, config_path, sockets)

    supervisor = _Supervisor(settings, worker, log, metrics_dir)
    try:
        status = supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("workers.stopped", status=status)
    if status == 2:
        raise SystemExit(2)
    signal.signal(supervisor.stopped_by, signal.SIG_DFL)  # end by it, as one bridge does
    signal.raise_signal(supervisor.stopped_by)


def private_metrics() -> None:
    """Before prometheus_client is imported: forget a PROMETHEUS_MULTIPROC_DIR that no
    supervisor of ours made (another program's), so the bridge never writes its series
    into that directory nor reads that program's from it."""
    found = os.environ.get(MULTIPROC_VARIABLE)
    if found and found != os.environ.get(WORKERS_METRICS_VARIABLE):
        del os.environ[MULTIPROC_VARIABLE]


class _Supervisor:
    def __init__(
        self,
        settings: Settings,
        worker: Callable[[int, bool], None],  # (slot, started again)
        log: Any,
        metrics_dir: str,
    ) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.worker = worker
        self.log = log
        self.slots: dict[int, tuple[int, float]] = {}  # pid: (slot, started)
        self.stopped_by = signal.SIGTERM
        self.stopping = False

    def run(self) -> int:
        """Start the workers, keep them running until told to stop; the exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):  # HANDLED: these four
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGHUP, self._pass_on)
        signal.signal(signal.SIGALRM, self._kill)
        for slot in range(self.settings.workers):
            self._start(slot)
        status = 0
        while self.slots:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            slot, started = self.slots.pop(pid, (-1, 0.0))
            if slot < 0:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            _mark_dead(pid, self.metrics_dir)
            if self.stopping:
                continue
            self.log.error("worker.exited", worker=slot, pid=pid, exit_status=code)
            if code == 2:  # it refused to start: so would every other
                status = 2
                self._stop(signal.SIGTERM, None)
                continue
            if time.monotonic() - started < MIN_LIFE:
                time.sleep(MIN_LIFE)
            self._start(slot, restart=True)
        signal.alarm(0)
        return status

    def _start(self, slot: int, restart: bool = False) -> None:
        # Signals wait from the check until the worker is in `slots` (a SIGTERM handled in
        # between never reached it) and in the child until its own handlers are set.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            if self.stopping:  # a SIGTERM while starting them: start no more
                return
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    for sig in (signal.SIGTERM, signal.SIGALRM):
                        signal.signal(sig, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until its reloader takes it
                    signal.alarm(0)
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                    self.worker(slot, restart)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except KeyboardInterrupt:
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            self.slots[pid] = (slot, time.monotonic())
            self.log.info("worker.started", worker=slot, pid=pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _pass_on(self, sig: int, frame: FrameType | None) -> None:
        for pid in self.slots:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping, self.stopped_by = True, signal.Signals(sig)
        self.log.info(
            "bridge.draining",
            signal=signal.Signals(sig).name,
            deadline_s=self.settings.drain_timeout,
            workers=len(self.slots),
        )
        self._pass_on(signal.SIGTERM, frame)
        signal.alarm(self.settings.drain_timeout + KILL_AFTER)

    def _kill(self, sig: int, frame: FrameType | None) -> None:
        self.log.error("workers.killed", pids=sorted(self.slots))
        self._pass_on(signal.SIGKILL, frame)


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """prometheus_client's bookkeeping for a worker gone: its live gauges are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
