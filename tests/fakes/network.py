"""The network a shared bridge lives in, on loopback: certificate authorities made in the
test (trustme) with their files, and a real forward proxy (tinyproxy, which scripts/test
installs) whose log proves what went through it."""

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.fakes.servers import free_port

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Authority:
    """A CA and, issued by it, a certificate for loopback: each as a PEM file."""

    ca: trustme.CA
    ca_file: Path
    cert_file: Path  # the leaf certificate and its chain
    key_file: Path

    def issue(self, directory: Path, name: str, *hosts: str) -> tuple[Path, Path]:
        """Another certificate of this CA (a client's): its chain and key files."""
        leaf = self.ca.issue_cert(*(hosts or HOSTS))
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        leaf.private_key_pem.write_to_path(str(key))
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        return cert, key


def authority(directory: Path, name: str = "ca") -> Authority:
    """A new CA in `directory`, with a certificate for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=f"complete-bridge test {name}")
    ca_file = directory / f"{name}.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    made = Authority(ca, ca_file, Path(), Path())
    cert, key = made.issue(directory, f"{name}-server")
    return Authority(ca, ca_file, cert, key)


@dataclass
class ForwardProxy:
    url: str  # http://127.0.0.1:PORT, no user
    log_path: Path

    def connects(self) -> list[str]:
        """The targets of the CONNECT requests it received (host:port)."""
        return [target for method, target in self.requests() if method == "CONNECT"]

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request it received: CONNECT host:port, or a plain
        HTTP request's absolute URL."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        found = [line.split("): ", 1)[1].split() for line in lines if "]: Request (" in line]
        return [(words[0], words[1]) for words in found]


@contextlib.asynccontextmanager
async def forward_proxy(
    directory: Path, user: str = "", password: str = ""
) -> AsyncIterator[ForwardProxy]:
    """tinyproxy on a free loopback port (asking for basic auth when `user` is given);
    its log at level Connect names every tunnel."""
    binary = shutil.which("tinyproxy")
    assert binary, "tinyproxy is not installed (scripts/test installs it)"
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's own folder)
    port, log = free_port(), directory / "tinyproxy.log"
    lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "LogLevel Connect"]
    lines += [f'LogFile "{log}"', "MaxClients 100"]
    if user:
        lines.append(f"BasicAuth {user} {password}")
    config = directory / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    process = await asyncio.create_subprocess_exec(
        binary,
        "-d",
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield ForwardProxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        await process.wait()
