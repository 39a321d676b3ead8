"""Routes, pure: reading [[routes]], matching calls, canary stickiness and split, shadow
sampling, the kill switch, and comparing two answers."""

import gzip
import hashlib
import json
import os
import subprocess
import sys
import zlib

import pytest

from proxy.config.settings import check_value
from proxy.edge.shadows import compare
from proxy.obs.record import ShadowRecord
from proxy.rollout.route_tables import RouteError, parse_routes
from proxy.rollout.routes import DEFAULT_ROUTE, Call, Route, bucket, choose, fingerprint
from proxy.rollout.shadow import Capture, Reply, legacy_answer

CANARY = {
    "name": "canary",
    "mode": "canary",
    "percent": 25,
    "primary": {"mode": "passthrough"},
    "secondary": {"mode": "translate", "model": "claude-haiku-4-5"},
}


def routes(*entries: dict[str, object]) -> tuple[Route, ...]:
    return parse_routes(list(entries), check_value)


def call(
    model: str = "claude-2.1",
    caller: str | None = "0123456789ab",
    user: str | None = None,
    **headers: str,
) -> Call:
    return Call(model=model, caller=caller, user=user, headers=headers)


def test_a_call_no_route_matches_is_translated() -> None:
    choice = choose(routes({"name": "x", "match": {"model": "claude-instant-*"}}), call())
    assert (choice.route, choice.arm.mode, choice.shadow) == (DEFAULT_ROUTE, "translate", None)


def test_first_match_wins_and_every_condition_must_hold() -> None:
    table = routes(
        {
            "name": "both",
            "match": {"model": "claude-2*", "header": "x-team: search*"},
            "mode": "passthrough",
        },
        {"name": "model", "match": {"model": ["claude-1*", "claude-2*"]}, "model": "m2"},
        {"name": "rest"},
    )
    assert choose(table, call(**{"x-team": "search-eu"})).route.name == "both"
    assert choose(table, call(**{"x-team": "ads"})).route.name == "model"
    assert choose(table, call(model="claude-instant-1")).route.name == "rest"


def test_match_on_key_fingerprint_and_user() -> None:
    table = routes(
        {"name": "key", "match": {"key": "0123456789ab"}},
        {"name": "user", "match": {"user": "team-*"}},
    )
    assert choose(table, call()).route.name == "key"
    assert choose(table, call(caller="ffffffffffff", user="team-a")).route.name == "user"
    assert choose(table, call(caller=None, user=None)).route.name == "default"


def test_single_arm_routes_carry_their_overrides() -> None:
    (route,) = routes({"name": "r", "mode": "passthrough", "model": "m", "idle_timeout": 5})
    assert route.primary.mode == "passthrough"
    assert dict(route.primary.overrides) == {"model": "m", "idle_timeout": 5.0}


def test_canary_is_sticky_and_splits_within_two_points() -> None:
    """Over 10,000 callers, the share on the secondary arm is the setting within 2
    points; a caller gets the same arm every time."""
    table = routes(CANARY)
    callers = [fingerprint(f"sk-{n}".encode()) for n in range(10_000)]
    arms = [choose(table, call(caller=c)).arm_name for c in callers]
    share = arms.count("secondary") / len(arms) * 100
    assert abs(share - 25) <= 2, share
    again = [choose(table, call(caller=c)).arm_name for c in callers]
    assert again == arms


def test_canary_sticky_by_user_falls_back_to_the_key() -> None:
    (route,) = routes({**CANARY, "sticky": "user", "percent": 50})
    users = [f"user-{n}" for n in range(200)]
    by_user = {u: choose([route], call(caller=None, user=u)).arm_name for u in users}
    # the key does not matter when there is a user...
    assert all(
        choose([route], call(caller="aaaaaaaaaaaa", user=u)).arm_name == by_user[u] for u in users
    )
    assert set(by_user.values()) == {"primary", "secondary"}
    # ...and decides when there is none
    key = "bbbbbbbbbbbb"
    expected = "secondary" if bucket("canary", key) < 50 else "primary"
    assert choose([route], call(caller=key, user=None)).arm_name == expected


def test_the_bucket_is_the_same_in_every_process() -> None:
    """A replica or a restart puts a caller in the same bucket: no per-process hashing."""
    code = "from proxy.rollout.routes import bucket; print(repr(bucket('canary', 'abc')))"
    seen = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        seen.add(out.stdout.strip())
    assert seen == {repr(bucket("canary", "abc"))}
    digest = hashlib.sha256(b"canary\0abc").digest()
    assert bucket("canary", "abc") == int.from_bytes(digest[:8], "big") / 2**64 * 100


@pytest.mark.parametrize(
    ("percent", "sample", "shadowed"),
    [(10, 9.99, True), (10, 10.0, False), (0, 0.0, False), (100, 99.9, True)],
)
def test_shadow_samples_by_percent(percent: int, sample: float, shadowed: bool) -> None:
    (route,) = routes({**CANARY, "name": "s", "mode": "shadow", "percent": percent})
    choice = choose([route], call(), sample=sample)
    assert choice.arm_name == "primary" and choice.arm.mode == "passthrough"
    assert (choice.shadow is route.secondary) is shadowed


def test_the_kill_switch_overrides_every_route() -> None:
    table = routes(CANARY)
    choice = choose(table, call(), force_mode="passthrough")
    assert (choice.route.name, choice.arm.mode, choice.shadow) == ("forced", "passthrough", None)


def test_fingerprint() -> None:
    assert fingerprint(b"sk-ant-test") == hashlib.sha256(b"sk-ant-test").hexdigest()[:12]
    assert fingerprint(None) is None and fingerprint(b"") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"mode": "translate"}, "routes #1: name: expected a non-empty string"),
        ({"name": "a", "mode": "mirror"}, "routes #1 (a): mode: expected one of translate"),
        ({"name": "a", "colour": 1}, "routes #1 (a): unknown key 'colour'"),
        ({"name": "a", "percent": 5}, "routes #1 (a): percent: only canary and shadow"),
        (
            {**CANARY, "percent": 150},
            "routes #1 (canary): percent: expected a number from 0 to 100",
        ),
        ({**CANARY, "percent": True}, "routes #1 (canary): percent: expected a number"),
        ({**CANARY, "secondary": None}, "routes #1 (canary): secondary: a canary route needs"),
        ({**CANARY, "model": "m"}, "routes #1 (canary): model: a canary route sets it in"),
        (
            {**CANARY, "primary": {"mode": "canary"}},
            "routes #1 (canary): primary: mode: an arm is translate or passthrough",
        ),
        (
            {**CANARY, "primary": {"idle_timeout": -1}},
            "routes #1 (canary): primary: idle_timeout: expected a number of seconds above 0",
        ),
        (
            {**CANARY, "primary": {"upstream_key": "sk-ant-in-the-file"}},
            "routes #1 (canary): primary: upstream_key: expected env:NAME or file:PATH",
        ),
        (
            {"name": "a", "match": {"key": "sk-ant-123"}},
            "expected key fingerprints (12 lower-case hex digits",
        ),
        ({"name": "a", "match": {"header": "nocolon"}}, 'expected "name: value"'),
        ({"name": "a", "match": {"size": 1}}, "unknown key 'size'"),
        ({"name": "a", "match": {"model": 3}}, "expected a string or a list of strings"),
        ({"name": "a", "sticky": "ip"}, "sticky: expected key or user"),
    ],
)
def test_bad_routes_are_named(entry: dict[str, object], message: str) -> None:
    with pytest.raises(RouteError) as caught:
        routes(entry)
    assert str(caught.value).startswith(message) or message in str(caught.value)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(RouteError, match="the name 'a' is used twice"):
        routes({"name": "a"}, {"name": "a"})


def test_describe_hides_secrets() -> None:
    (route,) = routes(
        {**CANARY, "secondary": {"mode": "translate", "upstream_key": "env:TEAM_KEY"}}
    )
    assert "TEAM_KEY" not in route.describe() and "(secret)" in route.describe()


def compared(primary: Reply, secondary: Reply) -> ShadowRecord:
    record = ShadowRecord(
        route="r", caller=None, legacy_model=None, format="v2", stream=False,
        primary_mode="passthrough", secondary_mode="translate",
    )  # fmt: skip
    compare(primary, secondary, record)
    return record


def test_compare() -> None:
    same = compared((" Hello, World.", "stop_sequence"), (" Hello, World.", "stop_sequence"))
    assert same.exact_match and same.normalised_match and same.stop_match
    close = compared((" Hello,\n World.", "stop_sequence"), ("hello, world.", "max_tokens"))
    assert not close.exact_match and close.normalised_match and not close.stop_match
    assert (close.primary_chars, close.secondary_chars) == (15, 13)
    assert (close.primary_stop_reason, close.secondary_stop_reason) == (
        "stop_sequence", "max_tokens"
    )  # fmt: skip
    apart = compared(("yes", None), ("no", None))
    assert not apart.normalised_match and apart.stop_match


V2_EVENT = b'event: completion\ndata: {"type":"completion","completion":"%s","stop_reason":%s}\n\n'


@pytest.mark.parametrize(
    ("body", "stream", "expected"),
    [
        (b'{"completion": " Hi", "stop_reason": "stop_sequence"}', False, (" Hi", "stop_sequence")),
        (
            V2_EVENT % (b" Hi", b"null")
            + b"event: ping\ndata: {}\n\n"
            + V2_EVENT % (b" there", b"null")
            + V2_EVENT % (b"", b'"stop_sequence"'),
            True,
            (" Hi there", "stop_sequence"),
        ),
        (
            b'data: {"type":"completion","completion":" Hi","stop_reason":null}\n\n'
            b'data: {"type":"completion","completion":" Hi there","stop_reason":"max_tokens"}\n\n'
            b"data: [DONE]\n\n",
            True,
            (" Hi there", "max_tokens"),
        ),
        (b'event: error\ndata: {"type":"error","error":{}}\n\n', True, None),
        (b'data: {"type":"completion","completion":" Hi","stop_reason":null}\n\n', True, None),
        (b"not json", False, None),
    ],
)
def test_legacy_answer(body: bytes, stream: bool, expected: tuple[str, str] | None) -> None:
    """The text and stop reason of a legacy answer passed on as it came, or None."""
    assert legacy_answer(body, stream) == expected


def test_a_key_pasted_as_a_fingerprint_is_not_echoed() -> None:
    with pytest.raises(RouteError) as caught:
        routes({"name": "a", "match": {"key": "sk-ant-api03-SECRET"}})
    assert "SECRET" not in str(caught.value)


def test_a_canary_caller_without_key_or_user_is_drawn_per_call() -> None:
    """Callers with nothing to stick to would all share one bucket (all or none on the
    secondary); each of their calls is drawn instead."""
    table = routes(CANARY)
    arms = [choose(table, call(caller=None), sample=s).arm_name for s in (5.0, 24.9, 25.0, 90.0)]
    assert arms == ["secondary", "secondary", "primary", "primary"]


def test_a_compressed_legacy_answer_is_read_for_the_comparison() -> None:
    """A pass-through primary's gzipped or deflated answer (legacy SDKs ask for gzip) is
    read as it passes; an encoding the bridge cannot undo gives no answer, not a wrong one."""
    body = b'{"completion": " Hi", "stop_reason": "stop_sequence"}'
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        capture = Capture(1000, stream=False)
        capture.encoding(encoding)
        for n in range(0, len(packed), 7):
            capture.add(packed[n : n + 7])
        assert capture.answer() == (" Hi", "stop_sequence"), encoding
    capture = Capture(1000, stream=False)
    capture.encoding("br")
    capture.add(b"whatever")
    assert capture.answer() is None


def test_a_long_v1_stream_is_compared_without_holding_it() -> None:
    """v1 repeats the whole text on every line: the capture keeps only the latest, so a
    stream far larger in total than the limit is still compared."""
    capture = Capture(1000, stream=True)
    text = ""
    for _ in range(150):  # 150 lines of up to ~830 bytes: ~65 KB in all
        text += "word "
        line = {"type": "completion", "completion": text, "stop_reason": None}
        capture.add(b"data: " + json.dumps(line).encode() + b"\n\n")
    last = {"type": "completion", "completion": text, "stop_reason": "max_tokens"}
    capture.add(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
    assert capture.answer() == (text, "max_tokens")
