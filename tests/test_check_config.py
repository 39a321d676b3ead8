"""`complete-bridge check-config FILE` and `complete-bridge fingerprint`, run as the
operator runs them: a subprocess. A good file prints its routes in the order they are
tried; a mistake exits 2 with one line, `complete-bridge: error: FILE:LINE: ...`."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "sk-ant-CHECKCONFIGsecretVALUE"


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    environ.pop("MISSING_BRIDGE_KEY", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
    )


GOOD = """\
upstream_url = "http://127.0.0.1:9"

[[routes]]
name = "opus"
match = { model = "claude-2*" }
model = "claude-opus-5"

[[routes]]
name = "trial"
mode = "canary"
percent = 10
match = { key = "0123456789ab" }
primary = { mode = "translate" }
secondary = { mode = "passthrough", upstream_url = "http://127.0.0.1:10", upstream_key = "env:HELD_KEY" }

[[routes]]
name = "compare"
mode = "shadow"
percent = 50
match = { header = "x-team: blue*", user = "u-*" }
primary = { mode = "translate" }
secondary = { mode = "translate", model = "claude-haiku-4-5" }
"""  # noqa: E501 (a TOML inline table is one line)


def test_a_good_file_prints_its_routes_in_order(tmp_path):
    """Exit 0; each route with what it matches and what answers, first match first, then
    the fallback; a secret reference's value is never printed."""
    path = tmp_path / "bridge.toml"
    path.write_text(GOOD)
    result = run("check-config", str(path), env={"HELD_KEY": SECRET})
    assert (result.returncode, result.stderr) == (0, "")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == [
        f"{path}: OK",
        "upstream: http://127.0.0.1:9",
        "force_mode (kill switch): off: routes decide",
        "routes, tried in order (first match wins):",
        "1. opus when model=claude-2*: translate (model=claude-opus-5)",
        "2. trial when key=0123456789ab: canary: 10% of callers to passthrough "
        "(upstream_url=http://127.0.0.1:10, upstream_key=(secret)); the rest translate",
        "3. compare when user=u-* and header=x-team: blue*: shadow: 50% of calls, in the "
        "background to translate (model=claude-haiku-4-5); the rest translate",
        "4. (no route matched) otherwise: translate",
    ]
    assert SECRET not in result.stdout + result.stderr


def test_the_kill_switch_is_what_it_prints(tmp_path):
    """With force_mode set, every call goes one way, whatever the routes say."""
    path = tmp_path / "bridge.toml"
    path.write_text('force_mode = "passthrough"\n\n' + GOOD.split("\n", 1)[1])
    result = run("check-config", str(path), env={"HELD_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines[2] == "force_mode (kill switch): passthrough"
    assert lines[4:] == ["1. (every call) otherwise: passthrough"]


# (id, file, the line the error must name, what the message must say)
MISTAKES = [
    ("bad-toml", 'port = 8080\n\n[[routes]]\nname = "x"\nmodel = \n', {5}, "not valid TOML"),
    (
        "unknown-key",
        '[[routes]]\nname = "x"\nmodle = "claude-opus-5"\n',
        {1, 3},  # the route's [[routes]] line, or better the key's own
        "unknown key 'modle'",
    ),
    (
        "canary-without-secondary",
        '[[routes]]\nname = "x"\nmode = "canary"\npercent = 10\nprimary = { mode = "translate" }\n',
        {1, 3},
        "secondary",
    ),
    (
        "percent-out-of-range",
        'port = 8080\n\n[[routes]]\nname = "x"\nmode = "canary"\npercent = 150\n'
        'primary = { mode = "translate" }\nsecondary = { mode = "translate" }\n',
        {6},
        "percent: expected a number from 0 to 100, got 150",
    ),
    (
        "arm-bad-timeout",
        '[[routes]]\nname = "x"\nmode = "shadow"\npercent = 10\n\n[routes.primary]\n'
        'mode = "translate"\n\n[routes.secondary]\nmode = "translate"\n'
        "first_byte_timeout = -1\n",
        {11},
        "secondary: first_byte_timeout: expected a number of seconds above 0, got -1",
    ),
    (
        "arm-bad-timeout-other-arm-sets-it",
        '[[routes]]\nname = "ok"\n\n[[routes]]\nname = "x"\nmode = "shadow"\npercent = 10\n'
        'primary = { mode = "translate", first_byte_timeout = 5 }\n'
        'secondary = { mode = "translate", first_byte_timeout = -1 }\n',
        {9},
        "secondary: first_byte_timeout: expected a number of seconds above 0, got -1",
    ),
    (
        "duplicate-name",
        '[[routes]]\nname = "x"\n\n[[routes]]\nname = "x"\nmodel = "claude-opus-5"\n',
        {4, 5},
        "'x' is used twice",
    ),
    (
        "match-key-not-a-fingerprint",
        '[[routes]]\nname = "x"\nmatch = { key = "sk-ant-api03-abc" }\n',
        {3},
        "expected key fingerprints (12 lower-case hex digits",
    ),
    (
        "route-upstream-key-env-missing",
        '[[routes]]\nname = "x"\nmode = "passthrough"\nupstream_key = "env:MISSING_BRIDGE_KEY"\n',
        {4},
        "MISSING_BRIDGE_KEY is not set",
    ),
    (
        "upstream-key-env-missing",
        'port = 8080\nupstream_key = "env:MISSING_BRIDGE_KEY"\n',
        {2},
        "MISSING_BRIDGE_KEY is not set",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "saying"), [pytest.param(m[1], m[3], id=m[0]) for m in MISTAKES])
def test_a_mistake_exits_2_with_one_line_saying_what(tmp_path, text, saying):
    """Exit 2, nothing on stdout, one line on stderr (no traceback) naming the problem."""
    result = run("check-config", str(_write(tmp_path, text)))
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith("complete-bridge: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert saying in result.stderr


@pytest.mark.parametrize(
    ("text", "lines"),
    [pytest.param(m[1], m[2], id=m[0]) for m in MISTAKES],
)
def test_a_mistake_names_the_file_and_line(tmp_path, text, lines):
    """The error is led by FILE:LINE:, the line being the one to fix."""
    path = _write(tmp_path, text)
    result = run("check-config", str(path))
    assert result.returncode == 2
    found = re.match(rf"complete-bridge: error: {re.escape(str(path))}:(\d+): \S", result.stderr)
    assert found, result.stderr
    assert int(found[1]) in lines, result.stderr


def test_a_secret_reference_that_resolves_passes(tmp_path):
    """The same env: reference is fine once its variable is set (and file: too)."""
    held = tmp_path / "held-key"
    held.write_text(SECRET + "\n")
    text = (
        f'upstream_key = "file:{held}"\n\n[[routes]]\nname = "x"\nmode = "passthrough"\n'
        'upstream_key = "env:MISSING_BRIDGE_KEY"\n'
    )
    result = run("check-config", str(_write(tmp_path, text)), env={"MISSING_BRIDGE_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout


def test_a_missing_file_exits_2():
    result = run("check-config", "/nonexistent/bridge.toml")
    assert result.returncode == 2
    assert result.stderr.startswith("complete-bridge: error: ")
    assert "/nonexistent/bridge.toml" in result.stderr


@pytest.mark.parametrize("key", ["sk-ant-api03-fingerprintME", "cb-issued-key-42"])
def test_fingerprint_is_sha256_prefix_and_stable(key):
    """`echo KEY | complete-bridge fingerprint`: 12 hex digits, sha256(KEY)[:12], the
    same whatever the hash seed of the process."""
    expected = hashlib.sha256(key.encode()).hexdigest()[:12]
    printed = set()
    for seed in ("0", "1", "4242", "random"):
        result = run("fingerprint", stdin=key + "\n", env={"PYTHONHASHSEED": seed})
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert re.fullmatch(r"[0-9a-f]{12}\n", result.stdout), result.stdout
        printed.add(result.stdout.strip())
    assert printed == {expected}
