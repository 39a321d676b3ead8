"""What `scripts/test` does on a machine without the system tools it drives, with and
without BRIDGE_TEST_NO_APT. Each test runs the real script with a PATH that hides Node.js
and Chromium and holds a stand-in `apt-get` that records how it was called."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _path_without_node(tmp_path: Path) -> str:
    """A PATH with only what the script itself needs, and an `apt-get` that records its
    arguments and fails (so the script stops right after it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "bash"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    (bin_dir / "id").write_text("#!/usr/bin/bash\necho 0\n")  # as root, as CI runs it
    (bin_dir / "apt-get").write_text(f'#!/usr/bin/bash\necho "$@" >> {tmp_path}/apt.log\nexit 1\n')
    for tool in ("id", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


def _run_test_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BRIDGE_TEST_NO_APT"}
    environ.update(PATH=_path_without_node(tmp_path), **env)
    return subprocess.run(
        ["/usr/bin/bash", str(ROOT / "scripts/test")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scripts_test_installs_missing_tools_with_apt_as_root(tmp_path: Path) -> None:
    result = _run_test_script(tmp_path)
    assert result.returncode != 0  # the stand-in apt-get fails: the script stops there
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls[0] == "update -qq"


def test_bridge_test_no_apt_says_what_is_missing_and_never_runs_apt(tmp_path: Path) -> None:
    result = _run_test_script(tmp_path, BRIDGE_TEST_NO_APT="1")
    assert result.returncode == 1
    assert not (tmp_path / "apt.log").exists()
    assert "install nodejs npm chromium" in result.stderr
    assert "first (the suite needs them)" in result.stderr
