"""`complete-bridge check-config FILE` and `complete-bridge fingerprint`, run as the
operator runs them: a subprocess. A good file prints its routes in the order they are
tried; a mistake exits 2 with one line, `complete-bridge: error: FILE:LINE: ...`."""

import hashlib
import re
from pathlib import Path

import pytest

from tests.fakes.servers import run_cli

SECRET = "sk-ant-CHECKCONFIGsecretVALUE"


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


def test_a_good_file_prints_its_routes_in_order(tmp_path: Path) -> None:
    """Exit 0; each route with what it matches and what answers, first match first, then
    the fallback; a secret reference's value is never printed."""
    path = tmp_path / "bridge.toml"
    path.write_text(GOOD)
    no_ca = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}  # whatever this host's environment says
    result = run_cli("check-config", str(path), env={"HELD_KEY": SECRET, **no_ca})
    assert (result.returncode, result.stderr) == (0, "")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == [
        f"{path}: OK",
        "upstream: http://127.0.0.1:9",
        "metrics: GET /metrics on port 8080",
        "upstream egress: direct (no proxy); CAs from certifi's bundle",
        "listening: plain HTTP, 1 worker process",
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


def test_the_kill_switch_is_what_it_prints(tmp_path: Path) -> None:
    """With force_mode set, every call goes one way, whatever the routes say."""
    path = tmp_path / "bridge.toml"
    path.write_text('force_mode = "passthrough"\n\n' + GOOD.split("\n", 1)[1])
    result = run_cli("check-config", str(path), env={"HELD_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "force_mode (kill switch): passthrough" in lines
    routes = lines.index("routes, tried in order (first match wins):")
    assert lines[routes + 1 :] == ["1. (every call) otherwise: passthrough"]


KNOWN = "(known: model, key, user, header)"
ROUTE_KNOWN = "(known: name, match, mode, percent, sticky, primary, secondary, model, "
CANARY = 'mode = "canary"\npercent = 10\n'
ARMS = 'primary = { mode = "translate" }\nsecondary = { mode = "translate" }\n'

# (id, file, the line the error must name, the message after `FILE:LINE: `): every class
# of error, at every depth, in every way TOML writes a key: the key's own line, or for
# a missing key the header of its table.
MISTAKES = [
    # TOML itself: tomllib's line
    ("bad-toml", 'port = 8080\n\n[[routes]]\nname = "x"\nmodel = \n', 5, "not valid TOML ("),
    # top level
    ("top-unknown", "port = 8080\nprot = 1\n", 2, "prot: unknown setting (known: "),
    ("top-bad-value", '# c\n\nport = "many"\n', 3, "port: expected an integer from 1 to 65535"),
    ("top-unknown-table", "port = 1\n[server]\nport = 2\n", 2, "server: unknown setting"),
    ("top-dotted", "port = 1\n\nserver.port = 2\n", 3, "server: unknown setting"),
    (
        "top-secret-missing",
        'port = 8080\nupstream_key = "env:MISSING_BRIDGE_KEY"\n',
        2,
        "upstream_key: environment variable MISSING_BRIDGE_KEY is not set",
    ),
    (
        "client-keys-unreadable",
        'port = 1\n\nclient_keys = "file:/nonexistent/keys"\n',
        3,
        "client_keys: cannot read /nonexistent/keys",
    ),
    # [aliases]
    ("aliases-not-a-table", "port = 1\naliases = 3\n", 2, "aliases: expected a table of pattern"),
    (
        "aliases-bad-target",
        '[aliases]\n"claude-2*" = "m"\n"claude-1*" = 3\n',
        3,
        'aliases.claude-1*: expected "target model", got 3',
    ),
    (
        "aliases-inline",
        'port = 1\naliases = { "a*" = "m", "b*" = true }\n',
        2,
        'aliases.b*: expected "target model", got True',
    ),
    # [capabilities.X]
    (
        "capabilities-missing-max-output",
        "port = 1\n\n[capabilities.my-model]\nprefill = true\n",
        3,
        "capabilities.my-model: expected a table with at least max_output",
    ),
    (
        "capabilities-second-table",
        "[capabilities.a]\nmax_output = 1\n\n[capabilities.b]\nprefill = true\n",
        4,
        "capabilities.b: expected a table with at least max_output",
    ),
    (
        "capabilities-unknown-key",
        "[capabilities.m]\nmax_output = 5\n\nmax_ouput = 6\n",
        4,
        "capabilities.m: unknown key 'max_ouput'",
    ),
    (
        "capabilities-bad-value",
        '[capabilities.m]\nprefill = "no"\nmax_output = 5\n',
        2,
        "capabilities.m.prefill: expected true or false, got 'no'",
    ),
    (
        "capabilities-dotted",
        "port = 1\ncapabilities.m.max_output = 0\n",
        2,
        "capabilities.m.max_output: expected a whole number >= 1, got 0",
    ),
    (
        "capabilities-inline",
        "[capabilities]\nm = { max_output = 1 }\nn = { prefill = true }\n",
        3,
        "capabilities.n: expected a table with at least max_output",
    ),
    (
        "capabilities-quoted",
        '[capabilities."claude.x"]\nmax_output = 1\n"one.sampler" = 1\n',
        3,
        "capabilities.claude.x: unknown key 'one.sampler'",
    ),
    ("capabilities-not-a-table", "capabilities = 3\n", 1, "capabilities: expected [capabilities"),
    # [[routes]]: route keys
    (
        "route-unknown-key",
        '[[routes]]\nname = "x"\nmodle = "claude-opus-5"\n',
        3,
        f"routes #1 (x): unknown key 'modle' {ROUTE_KNOWN}",
    ),
    (
        "route-quoted-unknown-key",
        '[[routes]]\nname = "x"\n"modle" = "m"\n',
        3,
        "routes #1 (x): unknown key 'modle'",
    ),
    (
        "route-missing-name",
        '[[routes]]\nname = "a"\n\n[[routes]]\nmode = "passthrough"\n',
        4,
        "routes #2: name: expected a non-empty string",
    ),
    (
        "route-bad-name",
        '[[routes]]\nname = "a"\n[[routes]]\nmodel = "m"\nname = 3\n',
        5,
        "routes #2: name: expected a non-empty string",
    ),
    (
        "route-bad-mode",
        '[[routes]]\nname = "x"\nmode = "canery"\n',
        3,
        "routes #1 (x): mode: expected one of translate, passthrough, canary, shadow",
    ),
    (
        "route-bad-sticky",
        f'[[routes]]\nname = "x"\n{CANARY}{ARMS}sticky = "ip"\n',
        7,
        "routes #1 (x): sticky: expected key or user, got 'ip'",
    ),
    (
        "route-percent-out-of-range",
        f'port = 8080\n\n[[routes]]\nname = "x"\n{CANARY.replace("10", "150")}{ARMS}',
        6,
        "routes #1 (x): percent: expected a number from 0 to 100, got 150",
    ),
    (
        "route-missing-percent",
        '[[routes]]\nname = "x"\nmode = "shadow"\n' + ARMS,
        1,
        "routes #1 (x): percent: expected a number from 0 to 100, got None",
    ),
    (
        "route-percent-on-translate",
        '[[routes]]\nname = "x"\npercent = 5\n',
        3,
        "routes #1 (x): percent: only canary and shadow routes have it",
    ),
    (
        "canary-without-secondary",
        '[[routes]]\nname = "x"\nmode = "canary"\npercent = 10\nprimary = { mode = "translate" }\n',
        1,
        "routes #1 (x): secondary: a canary route needs a secondary = { mode = ... }",
    ),
    (
        "canary-top-level-override",
        f'[[routes]]\nname = "x"\n{CANARY}{ARMS}model = "m"\n',
        7,
        "routes #1 (x): model: a canary route sets it in primary or secondary",
    ),
    (
        "duplicate-name",
        '[[routes]]\nname = "x"\n\n[[routes]]\nname = "x"\nmodel = "m"\n',
        5,
        "routes #2 (x): the name 'x' is used twice",
    ),
    (
        "route-bad-override",
        '[[routes]]\nname = "x"\n\nidle_timeout = 0\n',
        4,
        "routes #1 (x): idle_timeout: expected a number of seconds above 0, got 0",
    ),
    ("routes-not-tables", "port = 1\nroutes = 3\n", 2, "routes: expected [[routes]] tables"),
    (
        "routes-inline-array",
        'routes = [\n  { name = "a" },\n\n  { name = "b", modle = 1 },\n]\n',
        4,
        "routes #2 (b): unknown key 'modle'",
    ),
    (
        "routes-inline-array-not-a-table",
        'routes = [\n  { name = "a" },\n  "b",\n]\n',
        3,
        "routes #2: expected a [[routes]] table",
    ),
    # [[routes]]: match.*
    (
        "match-dotted-misspelt",
        '[[routes]]\nname = "x"\nmatch.modle = "claude-2*"\n',
        3,
        f"routes #1 (x): match: unknown key 'modle' {KNOWN}",
    ),
    (
        "match-inline-misspelt-second-route",
        '[[routes]]\nname = "a"\n\n[[routes]]\nname = "b"\n\nmatch = { model = "c*", usr = "u" }\n',
        7,
        f"routes #2 (b): match: unknown key 'usr' {KNOWN}",
    ),
    (
        "match-table-misspelt",
        '[[routes]]\nname = "a"\n[[routes]]\nname = "b"\n'
        '[routes.match]\nmodel = "c*"\nheder = "x"\n',
        7,
        f"routes #2 (b): match: unknown key 'heder' {KNOWN}",
    ),
    (
        "match-not-a-table",
        '[[routes]]\nname = "x"\nmatch = "claude-2*"\n',
        3,
        'routes #1 (x): match: expected a table: match = { model = "claude-2*" }',
    ),
    (
        "match-bad-value",
        '[[routes]]\nname = "x"\nmatch.model = [\n  "a",\n  3,\n]\n',
        3,
        "routes #1 (x): match.model: expected a string or a list of strings",
    ),
    (
        "match-key-not-a-fingerprint",
        '[[routes]]\nname = "x"\nmatch = { key = "sk-ant-api03-abc" }\n',
        3,
        "routes #1 (x): match.key: expected key fingerprints (12 lower-case hex digits",
    ),
    (
        "match-bad-header",
        '[[routes]]\nname = "x"\n[routes.match]\nmodel = "a"\nheader = "x"\n',
        5,
        "routes #1 (x): match.header: expected \"name: value\", got 'x'",
    ),
    # [[routes]]: arms
    (
        "arm-bad-timeout",
        '[[routes]]\nname = "x"\nmode = "shadow"\npercent = 10\n\n[routes.primary]\n'
        'mode = "translate"\n\n[routes.secondary]\nmode = "translate"\nfirst_byte_timeout = -1\n',
        11,
        "routes #1 (x): secondary: first_byte_timeout: expected a number of seconds above 0",
    ),
    (
        "arm-bad-timeout-other-arm-sets-it",
        '[[routes]]\nname = "ok"\n\n[[routes]]\nname = "x"\nmode = "shadow"\npercent = 10\n'
        'primary = { mode = "translate", first_byte_timeout = 5 }\n'
        'secondary = { mode = "translate", first_byte_timeout = -1 }\n',
        9,
        "routes #2 (x): secondary: first_byte_timeout: expected a number of seconds above 0",
    ),
    (
        "arm-unknown-key-dotted",
        f'[[routes]]\nname = "x"\n{CANARY}{ARMS}\n[[routes]]\nname = "y"\n{CANARY}'
        'primary.mode = "translate"\nsecondary.mode = "passthrough"\nsecondary.modle = "m"\n',
        14,
        "routes #2 (y): secondary: unknown key 'modle' (known: mode, model, upstream_url",
    ),
    (
        "arm-bad-mode",
        f'[[routes]]\nname = "x"\n{CANARY}primary = {{ mode = "shadow" }}\n',
        5,
        "routes #1 (x): primary: mode: an arm is translate or passthrough, got 'shadow'",
    ),
    (
        "arm-missing",
        f'[[routes]]\nname = "x"\n{CANARY}',
        1,
        "routes #1 (x): primary: a canary route needs a primary = { mode = ... }",
    ),
    (
        "arm-bad-model",
        f'[[routes]]\nname = "x"\n{CANARY}secondary = {{ mode = "translate" }}\n'
        'primary = { mode = "translate", model = "" }\n',
        6,
        "routes #1 (x): primary: model: expected a model name, got ''",
    ),
    (
        "arm-upstream-key-env-missing",
        f'[[routes]]\nname = "x"\n{CANARY}primary = {{ mode = "translate" }}\n\n'
        '[routes.secondary]\nmode = "passthrough"\nupstream_key = "env:MISSING_BRIDGE_KEY"\n',
        9,
        "routes #1 (x): secondary: upstream_key: environment variable MISSING_BRIDGE_KEY is not",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "message"), [pytest.param(*m[1:], id=m[0]) for m in MISTAKES]
)
def test_a_mistake_exits_2_with_one_line_naming_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    """Exit 2, nothing on stdout, one line on stderr (no traceback):
    `complete-bridge: error: FILE:LINE: what`, LINE being the key to fix (or the header of
    the table a key is missing from)."""
    path = _write(tmp_path, text)
    result = run_cli("check-config", str(path))
    assert (result.returncode, result.stdout) == (2, ""), result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"complete-bridge: error: {path}:{line}: {message}"), (
        result.stderr
    )


def test_a_secret_reference_that_resolves_passes(tmp_path: Path) -> None:
    """The same env: reference is fine once its variable is set (and file: too)."""
    held = tmp_path / "held-key"
    held.write_text(SECRET + "\n")
    text = (
        f'upstream_key = "file:{held}"\n\n[[routes]]\nname = "x"\nmode = "passthrough"\n'
        'upstream_key = "env:MISSING_BRIDGE_KEY"\n'
    )
    result = run_cli(
        "check-config", str(_write(tmp_path, text)), env={"MISSING_BRIDGE_KEY": SECRET}
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout


def test_a_missing_file_exits_2() -> None:
    result = run_cli("check-config", "/nonexistent/bridge.toml")
    assert result.returncode == 2
    assert result.stderr.startswith("complete-bridge: error: ")
    assert "/nonexistent/bridge.toml" in result.stderr


@pytest.mark.parametrize("key", ["sk-ant-api03-fingerprintME", "cb-issued-key-42"])
def test_fingerprint_is_sha256_prefix_and_stable(key: str) -> None:
    """`echo KEY | complete-bridge fingerprint`: 12 hex digits, sha256(KEY)[:12], the
    same whatever the hash seed of the process."""
    expected = hashlib.sha256(key.encode()).hexdigest()[:12]
    printed = set()
    for seed in ("0", "1", "4242", "random"):
        result = run_cli("fingerprint", stdin=key + "\n", env={"PYTHONHASHSEED": seed})
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert re.fullmatch(r"[0-9a-f]{12}\n", result.stdout), result.stdout
        printed.add(result.stdout.strip())
    assert printed == {expected}
