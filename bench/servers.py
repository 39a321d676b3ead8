"""The processes under test: start on loopback, wait for /healthz, read CPU and RSS, stop.

CPU time and memory come from /proc/PID (utime+stime in clock ticks, VmRSS), so they are
the server process's own, whatever else runs on the machine.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str = "/healthz", method: str = "GET") -> int | None:
    """One request on a fresh connection; None while nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n"
                "connection: close\r\n\r\n".encode()
            )
            return int(sock.recv(64).split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """One server process, optionally pinned to CPUs (`taskset -c`), logging to a file."""

    def __init__(
        self, name: str, argv: list[str], port: int, cpus: str | None, logs: Path, cwd: Path = ROOT
    ):
        self.name, self.port, self.log_path, self.cwd = name, port, logs / f"{name}-{port}.log", cwd
        self.argv = (["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []) + argv
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_env: dict[str, str] = {}  # settings over the defaults (BRIDGE_*)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> "Server":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own argv)
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**_environment(), **self.extra_env},
            )
        return self

    def wait_ready(self, timeout: float = 30.0, poll: float = 0.002) -> float:
        """Seconds from now until /healthz answers 200."""
        assert self.process is not None
        started = time.perf_counter()
        while http_status(self.port) != 200:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; its log:\n{self.log_tail()}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{self.name} not ready in {timeout}s; log:\n{self.log_tail()}")
            time.sleep(poll)
        return time.perf_counter() - started

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far (all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cpu_ticks(cpus: set[int]) -> tuple[float, float]:
    """Seconds the given CPUs spent busy, and stolen by the hypervisor (/proc/stat)."""
    busy = steal = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, stolen = map(int, values[:8])
            busy += user + nice + system + irq + softirq
            steal += stolen
    return busy / TICK, steal / TICK


class Meter:
    """The server's CPU seconds, read when a measured run starts and ends (the load
    generator calls it then), with what else ran on the server's CPUs meanwhile."""

    def __init__(self, server: Server, cpus: set[int]) -> None:
        self.server, self.cpus = server, cpus
        self.marks: list[tuple[float, float, float, float]] = []

    def __call__(self) -> float:
        cpu = self.server.cpu_seconds()
        self.marks.append((time.perf_counter(), cpu, *cpu_ticks(self.cpus)))
        return cpu

    def interference(self) -> float:
        """The share of the server's CPUs that other processes and the hypervisor took."""
        (t0, own0, busy0, steal0), (t1, own1, busy1, steal1) = self.marks[-2:]
        others = (busy1 - busy0) - (own1 - own0) + (steal1 - steal0)
        return max(0.0, others) / (t1 - t0) / len(self.cpus)


def _environment() -> dict[str, str]:
    """Ours, less any BRIDGE_* setting: every bridge runs on its defaults, logging JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return {**env, "BRIDGE_LOG_FORMAT": "json"}


def python() -> str:
    return sys.executable


def upstream(port: int, cpus: str | None, logs: Path, *extra: str) -> Server:
    argv = [python(), str(BENCH / "upstream.py"), "--port", str(port), *extra]
    return Server("upstream", argv, port, cpus, logs)


def reference(port: int, upstream_port: int, cpus: str | None, logs: Path) -> Server:
    argv = [python(), str(BENCH / "reference.py"), "--port", str(port)]
    argv += ["--upstream-url", f"http://127.0.0.1:{upstream_port}"]
    return Server("reference", argv, port, cpus, logs)


def bridge(
    port: int, upstream_port: int, cpus: str | None, logs: Path, source: Path | None = None
) -> Server:
    """`python -m proxy serve`, from this checkout or from `source` (a folder holding
    another version's proxy/ package: `python -m` imports from the working directory)."""
    argv = [python(), "-m", "proxy", "serve", "--port", str(port)]
    argv += ["--upstream-url", f"http://127.0.0.1:{upstream_port}"]
    return Server("bridge", argv, port, cpus, logs, cwd=source or ROOT)
