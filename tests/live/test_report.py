"""`complete-bridge report`: the aggregation on hand-written log lines, its text, JSON and
HTML renderings, the CLI, a report of a real bridge's log, and the HTML page in a real
headless Chromium."""

import json
import re
import shutil
import subprocess
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.obs.record import adaptation_label
from proxy.report import build_report, parse_timestamp, render_html, render_json, render_text
from proxy.report.lines import FIELDS
from proxy.report.quantiles import EXACT_SAMPLES, Quantiles
from tests.fakes.factories import PROMPT, legacy_body
from tests.fakes.servers import bridge_process, run_cli, serving
from tests.fakes.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>document.title="pwned"</script>'


def line(event: str = "complete", **fields: object) -> str:
    """One log line as the bridge writes it; `fields` override the defaults."""
    base: dict[str, object] = {
        "event": event,
        "timestamp": "2025-03-01T10:00:00.000001Z",
        "level": "info",
    }
    if event == "complete":
        base |= {
            "route": "default",
            "arm": "primary",
            "mode": "translate",
            "caller": "3f9a1c2b7d4e",
            "legacy_model": "claude-2.1",
            "upstream_model": "claude-sonnet-4-5",
            "format": "v1",
            "stream": False,
            "status": 200,
            "error_type": None,
            "input_tokens": 10,
            "output_tokens": 20,
            "adaptations": [],
            "ttfb_ms": 5.0,
            "duration_ms": 100.0,
            "client_disconnected": False,
        }
    return json.dumps(base | fields)


LINES = [
    line(duration_ms=100, ttfb_ms=10, adaptations=["local_stop"]),
    line(duration_ms=200, ttfb_ms=20, adaptations=["local_stop", "dropped_field:tags"]),
    line(
        timestamp="2025-03-02T09:00:00Z",
        duration_ms=300,
        ttfb_ms=30,
        adaptations=["capped_max_tokens:100000->64000"],
        stream=True,
    ),
    line(
        timestamp="2025-03-02T12:00:00Z",
        caller="0000aaaabbbb",
        legacy_model="claude-instant-1.2",
        upstream_model="claude-haiku-4-5",
        status=529,
        error_type="overloaded_error",
        input_tokens=None,
        output_tokens=None,
        duration_ms=400,
        ttfb_ms=None,
    ),
    line(
        timestamp="2025-03-02T13:00:00Z",
        caller=None,
        status=None,
        client_disconnected=True,
        input_tokens=None,
        output_tokens=None,
        duration_ms=50,
        ttfb_ms=None,
    ),
    line(
        timestamp="2025-03-02T14:00:00Z",
        route="canary",
        arm="secondary",
        mode="passthrough",
        stream=True,
        error_type="overloaded_error",
        output_tokens=3,
    ),
    line("shadow", route="canary", status=200, exact_match=True, normalised_match=True) + "",
    line("shadow", route="canary", status=200, exact_match=False, normalised_match=True),
    line("shadow", route="canary", status=200, stop_match=True, normalised_match=False),
    line("shadow", route="canary", status=None, error_type="timeout_error"),
    line("shadow", route="canary", skipped=True),
    line("passthrough", method="GET", path="/v1/models", status=200),
    line("bridge.starting"),
    "not json at all",
    '{"no": "event"}',
    "[1, 2, 3]",
    "",
]


def test_aggregation_counts_exactly() -> None:
    """Totals, callers, models, routes, adaptations, shadows and days come out exact."""
    r = build_report(LINES)
    assert (r.lines, r.skipped, r.outside) == (17, 4, 0)
    assert r.events == {"complete": 6, "shadow": 5, "passthrough": 1, "bridge.starting": 1}
    assert (r.first, r.last) == ("2025-03-01T10:00:00Z", "2025-03-02T14:00:00Z")
    t = r.totals
    assert (t.requests, t.errors, t.hangups, t.streams) == (6, 2, 1, 2)
    assert (t.input_tokens, t.output_tokens) == (40, 63)
    assert (t.callers, t.models, t.error_rate) == (3, 2, 0.4)

    assert [(c.caller, c.requests, c.errors, c.last_seen) for c in r.callers] == [
        ("3f9a1c2b7d4e", 4, 1, "2025-03-02T14:00:00Z"),
        ("(no key)", 1, 0, "2025-03-02T13:00:00Z"),
        ("0000aaaabbbb", 1, 1, "2025-03-02T12:00:00Z"),
    ]
    assert r.callers[0].share == round(4 / 6, 4)
    assert r.callers[0].models == ["claude-2.1"]
    assert [(m.legacy_model, m.requests, m.callers, m.upstream_models) for m in r.models] == [
        ("claude-2.1", 5, 2, ["claude-sonnet-4-5"]),
        ("claude-instant-1.2", 1, 1, ["claude-haiku-4-5"]),
    ]

    default, canary = r.routes
    assert (default.route, default.arm, default.mode) == ("default", "primary", "translate")
    assert (default.requests, default.errors, default.hangups) == (5, 1, 1)
    assert default.error_rate == 0.25  # hang-ups are not answered requests
    assert (default.duration_p50_ms, default.duration_p95_ms) == (200, 400)
    assert (default.ttfb_p50_ms, default.ttfb_p95_ms) == (20, 30)
    assert (canary.route, canary.arm, canary.mode) == ("canary", "secondary", "passthrough")
    assert (canary.requests, canary.errors, canary.error_rate) == (1, 1, 1.0)

    assert [(a.kind, a.requests, a.share) for a in r.adaptations] == [
        ("local_stop", 2, round(2 / 6, 4)),
        ("capped_max_tokens", 1, round(1 / 6, 4)),
        ("dropped_field:tags", 1, round(1 / 6, 4)),
    ]
    assert r.adaptations[0].top_models == [("claude-2.1", 2)]
    assert r.adaptations[0].top_callers == [("3f9a1c2b7d4e", 2)]

    (shadow,) = r.shadow
    assert (shadow.route, shadow.comparisons, shadow.skipped, shadow.failed) == ("canary", 4, 1, 1)
    assert (shadow.exact, shadow.normalised, shadow.stop_match) == (1, 2, 1)
    assert (shadow.exact_rate, shadow.normalised_rate) == (round(1 / 3, 4), round(2 / 3, 4))

    assert [asdict(d) for d in r.days] == [
        {"day": "2025-03-01", "requests": 2, "errors": 0},
        {"day": "2025-03-02", "requests": 4, "errors": 2},
    ]


def test_old_lines_without_route_arm_mode_or_caller_get_the_defaults() -> None:
    """Lines from before route/arm/mode/caller were logged count as default/primary/
    translate and "(no key)"; a request refused before its model was read is "(unknown)"."""
    old = json.loads(line())
    for key in ("route", "arm", "mode", "caller"):
        del old[key]
    refused = {"event": "complete", "timestamp": "2025-03-01T10:00:00Z", "status": 401}
    refused["error_type"] = "authentication_error"
    r = build_report([json.dumps(old), json.dumps(refused)])
    assert [(x.route, x.arm, x.mode, x.requests) for x in r.routes] == [
        ("default", "primary", "translate", 2)
    ]
    assert [(c.caller, c.requests) for c in r.callers] == [("(no key)", 2)]
    assert [(m.legacy_model, m.errors) for m in r.models] == [
        ("(unknown)", 1),
        ("claude-2.1", 0),
    ]


def test_bad_lines_are_skipped_and_counted() -> None:
    """Lines that are not a JSON object with a string "event" are skipped and counted, and
    so is a line holding a value of the wrong type where the report reads one; null is
    "not known", not a reason to skip."""
    junk: list[str | bytes] = ["{", "null", '"complete"', '{"event": 3}', "\x00\xff", b"\xff\xfe{"]
    odd = [
        line(status="200"),
        line(input_tokens="many"),
        line(adaptations="local_stop"),
        line(adaptations=["local_stop", 3]),
        line(duration_ms=True),
        line(caller=5),
        line(legacy_model=["claude-2.1"]),
        line(stream="yes"),
        line(client_disconnected=1),
        line("shadow", exact_match="true"),
    ]
    nulls = line(status=None, input_tokens=None, adaptations=None, duration_ms=None)
    r = build_report([*junk, *odd, nulls])
    assert (r.lines, r.skipped) == (17, 16)
    assert (r.totals.requests, r.totals.hangups, r.totals.input_tokens) == (1, 1, 0)
    assert r.adaptations == [] and r.shadow == []
    assert r.routes[0].duration_p50_ms is None


YEAR_MS = 366 * 24 * 3600 * 1000  # the longest duration the report takes

# Values no bridge writes where the report reads a number: each makes its line skipped.
# (orjson reads an integer past 64 bits as a float; Infinity and NaN are not JSON at all.)
UNUSABLE = [
    1e308,
    -1e308,
    -1,
    -0.5,
    2**64,
    10**30,
    "1",
    "",
    True,
    False,
    {"ms": 1},
    [1],
    float("inf"),
    float("-inf"),
    float("nan"),
]
# (event, field): values the report must still count, the edges of the range
NUMBERS: dict[tuple[str, str], list[float]] = {
    ("complete", "status"): [100, 599],
    ("complete", "input_tokens"): [0, 2**53],
    ("complete", "output_tokens"): [0, 2**53],
    ("complete", "duration_ms"): [0, 0.001, YEAR_MS],
    ("complete", "ttfb_ms"): [0, 0.001, YEAR_MS],
    ("shadow", "status"): [100, 599],
    ("shadow", "similarity"): [0, 0.5, 1],
    ("shadow", "length_ratio"): [0, 1e9],
    ("shadow", "duration_ms"): [0, 0.001, YEAR_MS],
}


def test_every_numeric_field_is_in_the_table() -> None:
    """The fuzz below covers every numeric field the report reads."""
    numeric = {
        (event, name)
        for event, checks in FIELDS.items()
        for name, ok in checks.items()
        if ok(0) or ok(100)
    }
    assert numeric == set(NUMBERS)


def test_an_unusable_number_skips_its_line_not_the_report(tmp_path: Path) -> None:
    """`report` as a process on a log where every numeric field holds, in turn, every
    value it cannot use (1e308 crashed it once with OverflowError): exit 0 in every
    format, each such line skipped and counted, and the values at the edges of each
    field's range counted."""
    bad = [
        json.dumps({**json.loads(line(event)), name: value})
        for (event, name) in NUMBERS
        for value in UNUSABLE
    ]
    good = [
        line(event, **{name: value})
        for (event, name), values in NUMBERS.items()
        for value in values
    ]
    log = tmp_path / "bridge.log"
    log.write_text("\n".join([*bad, *good]) + "\n")
    done = run(str(log), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert (r["lines"], r["skipped"]) == (len(bad) + len(good), len(bad))
    complete = sum(len(v) for (event, _), v in NUMBERS.items() if event == "complete")
    assert r["totals"]["requests"] == complete
    assert r["totals"]["input_tokens"] == 2**53 + 10 * (complete - 2)
    (route,) = r["routes"]
    assert (route["duration_p50_ms"], route["duration_p95_ms"]) == (100, YEAR_MS)
    assert (route["ttfb_p50_ms"], route["ttfb_p95_ms"]) == (5, YEAR_MS)
    text = run(str(log))
    assert text.returncode == 0, text.stderr
    assert f"{len(bad):,} skipped" in text.stdout
    page = tmp_path / "report.html"
    assert run(str(log), "--html", str(page)).returncode == 0
    assert "Legacy requests per day" in page.read_text()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(sorted(FIELDS)),
    values=st.dictionaries(
        st.sampled_from(sorted({name for checks in FIELDS.values() for name in checks})),
        JSON_VALUES,
    ),
    timestamp=st.one_of(st.text(max_size=30), JSON_VALUES, st.datetimes().map(str)),
)
def test_no_field_value_crashes_the_report(
    event: str, values: dict[str, object], timestamp: object
) -> None:
    """Whatever any field the report reads holds (any JSON value, or Infinity and NaN
    written by a non-strict encoder), the report comes out in every format and the line
    is either counted or skipped; what is counted stays in range."""
    raw = json.dumps({**json.loads(line(event)), **values, "timestamp": timestamp})
    r = build_report([raw, line()], since=None)
    assert r.lines == 2 and r.skipped in (0, 1)
    assert r.events.get(event, 0) + r.skipped == 2 - (event != "complete")
    assert r.totals.input_tokens >= 0 and r.totals.output_tokens >= 0
    for row in r.routes:
        for q in (row.duration_p50_ms, row.duration_p95_ms, row.ttfb_p50_ms, row.ttfb_p95_ms):
            assert q is None or 0 <= q <= YEAR_MS
    render_text(r), render_json(r), render_html(r)
    since = build_report([raw], since=parse_timestamp("2025-01-01T00:00:00Z"))
    assert since.skipped + since.outside + sum(since.events.values()) == 1


def test_since_and_until_filter_events() -> None:
    """--since is inclusive, --until exclusive; events outside are counted apart."""
    r = build_report(
        LINES,
        since=parse_timestamp("2025-03-02T12:00:00Z"),
        until=parse_timestamp("2025-03-02T14:00:00"),  # no zone: UTC
    )
    assert (r.totals.requests, r.outside) == (2, 11)
    assert (r.first, r.last) == ("2025-03-02T12:00:00Z", "2025-03-02T13:00:00Z")


def test_long_tables_are_capped_with_a_count_of_the_rest() -> None:
    """Only the top callers are listed; the rest are counted."""
    lines = [line(caller=f"caller{i:03d}") for i in range(60) for _ in range(i + 1)]
    r = build_report(lines, top=50)
    assert len(r.callers) == 50 and r.callers_more == 10
    assert r.callers[0].caller == "caller059"
    assert "... and 10 more callers" in render_text(r)


def test_quantiles_are_exact_then_bucketed() -> None:
    """Exact nearest-rank quantiles up to EXACT_SAMPLES values, then within 4.5 %."""
    q = Quantiles()
    for v in range(1, 101):
        q.add(v)
    assert (q.quantile(0.5), q.quantile(0.95)) == (50, 95)
    for v in range(EXACT_SAMPLES):
        q.add(1000 + v % 1000)
    assert q.exact is None
    p50 = q.quantile(0.5)
    assert p50 is not None and 1500 * 0.955 <= p50 <= 1500 * 1.045


def test_adaptation_kinds_fold_numbers_only() -> None:
    """A capped max_tokens is one kind whatever the numbers; field names stay apart."""
    assert adaptation_label("capped_max_tokens:300000->64000") == "capped_max_tokens"
    assert adaptation_label("dropped_field:tags") == "dropped_field:tags"
    assert adaptation_label("local_stop") == "local_stop"


def test_text_fits_100_columns_and_strips_control_characters() -> None:
    """The terminal report is at most 100 columns, and a log value cannot send escapes."""
    long = "m" * 300
    r = build_report([*LINES, line(legacy_model=long, caller="\x1b[31mred\x1b[0m")])
    text = render_text(r)
    assert max(len(x) for x in text.splitlines()) <= 100
    assert "\x1b" not in text
    assert "\ufffd[31mred" in text
    assert "local_stop" in text and "canary" in text


def test_json_is_the_whole_report() -> None:
    """--json carries every number of the report."""
    out = json.loads(render_json(build_report(LINES)))
    assert out["totals"]["requests"] == 6
    assert out["callers"][0] == {
        "caller": "3f9a1c2b7d4e",
        "requests": 4,
        "share": 0.6667,
        "errors": 1,
        "last_seen": "2025-03-02T14:00:00Z",
        "models": ["claude-2.1"],
        "served": ["default / primary / translate (3)", "canary / secondary / passthrough (1)"],
        "passthrough": 1,
        "adaptations": [["local_stop", 2], ["capped_max_tokens", 1], ["dropped_field:tags", 1]],
        "cost": "$0.0011",  # 40 tokens in at $3, 63 out at $15 per million (sonnet 4.5)
        "flags": [
            "still on pass-through (1 call)",
            "prompts need adaptations: local_stop 50%, capped_max_tokens 25%, "
            "dropped_field:tags 25%",
        ],
    }
    assert out["adaptations"][0]["top_models"] == [["claude-2.1", 2]]


def test_html_escapes_every_log_value() -> None:
    """A hostile model name, caller or event name is text in the page, never markup."""
    hostile = [
        line(legacy_model=HOSTILE, caller='"><img src=x onerror=alert(1)>'),
        line("<b>event</b>"),
        line("shadow", route="<i>r</i>", status=200),
    ]
    page = render_html(build_report(hostile))
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    assert "<i>r" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "default-src 'none'" in page


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_cli("report", *args, stdin=stdin, cwd=ROOT)


def test_cli_reads_files_and_stdin(tmp_path: Path) -> None:
    """FILE arguments and '-' (stdin) are read in order, as one log."""
    log = tmp_path / "bridge.log"
    log.write_text("\n".join(LINES[:3]) + "\n")
    done = run(str(log), "-", "--json", stdin="\n".join(LINES[3:]) + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["requests"] == 6
    text = run(stdin="\n".join(LINES))
    assert text.returncode == 0, text.stderr
    assert "6 requests from 3 callers" in text.stdout
    assert "3 skipped" in text.stdout  # the joined text has no line for the last ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.log"], "complete-bridge: error: cannot read missing.log (No such file"),
        (["--since", "yesterday"], "complete-bridge: error: --since: expected an ISO 8601"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(args: list[str], message: str) -> None:
    """A missing file or a bad timestamp is one line on stderr and exit 2."""
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1


def test_cli_help_answers_questions() -> None:
    """`report --help` says what is read, what is shown, and the output flags."""
    out = run("--help").stdout
    for text in ("stdin", "--json", "--html", "--since", "fingerprint", "adaptations"):
        assert text in out


async def test_report_of_a_real_bridge_log(tmp_path: Path) -> None:
    """A real bridge in front of the fake upstream, a mix of calls, then `report --json`
    on its log: requests, callers, models, errors, streams, adaptations and tokens match
    the calls made."""
    log = tmp_path / "bridge.log"
    v2 = {"anthropic-version": "2023-06-01"}
    calls = [  # (key, body, headers)
        ("key-alpha", legacy_body(), {}),
        ("key-alpha", legacy_body(stop_sequences=["\n"]), v2),  # whitespace: local_stop
        ("key-alpha", legacy_body(model="claude-instant-1.2", stream=True), v2),
        ("key-beta", legacy_body(prompt="\n\nHuman: FAIL 529\n\nAssistant:"), {}),
    ]
    async with (
        serving(FakeUpstream()) as upstream_url,
        bridge_process(upstream_url, log) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=10) as client,
    ):
        statuses = []
        for key, body, headers in calls:
            response = await client.post(
                "/v1/complete", json=body, headers=headers | {"x-api-key": key}
            )
            statuses.append(response.status_code)
        passthrough = await client.get("/v1/models", headers={"x-api-key": "key-alpha"})
        assert statuses == [200, 200, 200, 529] and passthrough.status_code == 404
        raw = bridge.log()
    done = run(str(log), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)

    assert r["events"]["complete"] == 4 and r["events"]["passthrough"] == 1
    t = r["totals"]
    assert (t["requests"], t["errors"], t["hangups"], t["streams"]) == (4, 1, 0, 1)
    # The fake counts words: the prompt's 5 in, and "echo: " and the same 5 out.
    assert PROMPT.endswith("Human: Why is the sky blue?\n\nAssistant:")
    assert (t["input_tokens"], t["output_tokens"]) == (3 * 5, 3 * 6)
    models = {
        m["legacy_model"]: (m["requests"], m["errors"], m["upstream_models"]) for m in r["models"]
    }
    assert models == {
        "claude-2.1": (3, 1, ["claude-sonnet-4-5"]),
        "claude-instant-1.2": (1, 0, ["claude-haiku-4-5"]),
    }
    assert [a["kind"] for a in r["adaptations"]] == ["local_stop"]
    assert r["adaptations"][0]["requests"] == 1
    (route,) = r["routes"]
    assert (route["route"], route["arm"], route["mode"]) == ("default", "primary", "translate")
    assert (route["requests"], route["errors"]) == (4, 1)
    assert route["duration_p50_ms"] > 0 and route["ttfb_p95_ms"] > 0
    assert len(r["days"]) in (1, 2) and sum(d["requests"] for d in r["days"]) == 4
    callers = sorted(c["requests"] for c in r["callers"])
    if any("caller" in x for x in raw if x.get("event") == "complete"):
        assert callers == [1, 3]  # one fingerprint per key
        assert "key-alpha" not in done.stdout  # fingerprints, never keys
    else:  # a bridge from before the caller field
        assert callers == [4]


async def test_a_refused_call_counts_under_its_model(tmp_path: Path) -> None:
    """A call refused for a bad body after routing is logged, and reported, under the model
    it named; "(unknown)" is only for bodies with no model string, and "(unrouted)" for
    calls refused before routing (a body that is not JSON)."""
    log = tmp_path / "bridge.log"
    async with (
        serving(FakeUpstream()) as upstream_url,
        bridge_process(upstream_url, log) as bridge,
        httpx.AsyncClient(
            base_url=bridge.url, timeout=10, headers={"x-api-key": "key-alpha"}
        ) as client,
    ):
        calls = [
            legacy_body(),
            legacy_body(prompt=["not", "a", "string"]),
            legacy_body(model="claude-instant-1.2", max_tokens_to_sample=0),
            legacy_body(model=...),
            legacy_body(model=7),
        ]
        statuses = [(await client.post("/v1/complete", json=body)).status_code for body in calls]
        junk = await client.post("/v1/complete", content=b"{not json")
        assert statuses == [200, 400, 400, 400, 400] and junk.status_code == 400
        complete = await bridge.wait_for("complete", count=6)  # lines follow answers
    assert [x.get("legacy_model") for x in complete] == [
        "claude-2.1",
        "claude-2.1",
        "claude-instant-1.2",
        None,
        None,
        None,
    ]
    done = run(str(log), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    models = {m["legacy_model"]: (m["requests"], m["errors"]) for m in r["models"]}
    assert models == {"claude-2.1": (2, 1), "claude-instant-1.2": (1, 1), "(unknown)": (3, 3)}
    routes = {x["route"]: (x["requests"], x["errors"]) for x in r["routes"]}
    assert routes == {"default": (5, 4), "(unrouted)": (1, 1)}


async def test_a_passed_on_call_with_an_odd_model_is_counted(tmp_path: Path) -> None:
    """A call passed on as it came logs a model that is not a string as null, so the
    report counts it under "(unknown)" rather than skipping its line."""
    log = tmp_path / "bridge.log"
    async with (
        serving(FakeUpstream()) as upstream_url,
        bridge_process(upstream_url, log, env={"BRIDGE_FORCE_MODE": "passthrough"}) as bridge,
        httpx.AsyncClient(
            base_url=bridge.url, timeout=10, headers={"x-api-key": "key-alpha"}
        ) as client,
    ):
        for body in (legacy_body(), legacy_body(model={"name": "claude-2.1"})):
            await client.post("/v1/complete", json=body)
        complete = await bridge.wait_for("complete", count=2)
    assert [x["legacy_model"] for x in complete] == ["claude-2.1", None]
    r = json.loads(run(str(log), "--json").stdout)
    assert r["skipped"] == 0
    models = {m["legacy_model"]: m["requests"] for m in r["models"]}
    assert models == {"claude-2.1": 1, "(unknown)": 1}


def test_text_report_shows_requests_per_day(tmp_path: Path) -> None:
    """The terminal report has the per-day section JSON and HTML have: each day, its
    requests and errors, and a bar as long as its share of the busiest day."""
    log = tmp_path / "bridge.log"
    log.write_text("\n".join(LINES) + "\n")
    done = run(str(log))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    start = out.index("Legacy requests per day")
    assert out[start + 1].split() == ["day", "requests", "errors"]
    rows = [x.split() for x in out[start + 2 : start + 4]]
    assert rows == [["2025-03-01", "2", "0", "#" * 25], ["2025-03-02", "4", "2", "#" * 50]]
    assert out[start + 4] == ""


def test_text_report_shows_the_last_quarter_and_counts_earlier_days() -> None:
    """Past 92 days the text shows the latest 92 and says how many earlier ones --json has."""
    days = [f"2025-{m:02d}-{d:02d}T12:00:00Z" for m in range(1, 5) for d in range(1, 29)]
    text = render_text(build_report([line(timestamp=t) for t in days]))
    assert "... and 20 more earlier days (in --json)" in text
    assert "2025-01-21 " in text and "2025-01-20 " not in text


def test_an_unreadable_timestamp_is_not_a_crash(tmp_path: Path) -> None:
    """A timestamp out of datetime's range once it is moved to UTC counts the line without a
    day, or outside --since/--until; a --since like that is a usage error, not a trace."""
    log = tmp_path / "bridge.log"
    log.write_text(line(timestamp="0001-01-01T00:00:00+01:00") + "\n" + line() + "\n")
    done = run(str(log), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert (r["totals"]["requests"], r["skipped"], len(r["days"])) == (2, 0, 1)
    since = run(str(log), "--json", "--since", "2025-01-01")
    assert json.loads(since.stdout)["outside"] == 1
    bad = run(str(log), "--since", "9999-12-31T23:59:59-01:00")
    assert bad.returncode == 2 and bad.stderr.startswith("complete-bridge: error: --since:")


class _Dom(HTMLParser):
    """What the test needs from the DOM Chromium dumped: the title, table cells by table
    id, SVG rects by chart id, script elements and any attribute that loads a URL."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.scripts = "", 0
        self.urls: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.bars: dict[str, int] = {}
        self._table: str | None = None
        self._chart: str | None = None
        self._in_title = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "script":
            self.scripts += 1
        elif tag == "title" and self._chart is None:
            self._in_title = True
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._in_cell = True
            self.tables[self._table][-1].append("")
        elif tag == "svg":
            self._chart = a.get("id") or ""
            self.bars[self._chart] = 0
        elif tag == "rect" and self._chart and a.get("class") == "bar":
            self.bars[self._chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "table":
            self._table = None
        elif tag == "td":
            self._in_cell = False
        elif tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._in_cell and self._table:
            self.tables[self._table][-1][-1] += data


@pytest.mark.browser
def test_html_page_in_a_real_browser(tmp_path: Path) -> None:
    """Chromium renders the page: tables with the right numbers, one bar per day, model
    and adaptation, the hostile model name shown as text (its script does not run and the
    title stays), and the page asks the network for nothing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is required (apt-get install chromium); .ci/run installs it"
    page = tmp_path / "report.html"
    log = tmp_path / "bridge.log"
    log.write_text("\n".join([*LINES, line(legacy_model=HOSTILE, status=200)]) + "\n")
    done = run(str(log), "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(page)

    netlog = tmp_path / "net.json"
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    argv += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    argv += ["--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    argv += [f"--log-net-log={netlog}", "--dump-dom", page.as_uri()]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = _Dom()
    dom.feed(shown.stdout)

    assert dom.title == "complete-bridge migration report"  # the hostile script did not run
    assert dom.scripts == 0 and dom.urls == []
    models = {row[0]: row[1] for row in dom.tables["models"] if row}
    assert models == {"claude-2.1": "5", "claude-instant-1.2": "1", HOSTILE: "1"}
    callers = {row[0]: row[1] for row in dom.tables["callers"] if row}
    assert callers == {"3f9a1c2b7d4e": "5", "(no key)": "1", "0000aaaabbbb": "1"}
    routes = [row[:5] for row in dom.tables["routes"] if row]
    assert routes == [
        ["default", "primary", "translate", "6", "1"],
        ["canary", "secondary", "passthrough", "1", "1"],
    ]
    assert [row[:3] for row in dom.tables["shadow"] if row] == [["canary", "4", "1"]]
    assert dom.bars == {
        "chart-days": 2,
        "chart-callers": 3,
        "chart-models": 3,
        "chart-adaptations": 3,
    }

    # Requests the page made carry its file:// site in their isolation key; Chromium's
    # own background requests do not.
    events = json.loads(netlog.read_text())["events"]
    fetched = {
        e["params"]["url"]
        for e in events
        if "url" in e.get("params", {})
        and "file://" in e["params"].get("network_isolation_key", "")
        and not e["params"]["url"].startswith("file:")
    }
    assert fetched == set()
    assert re.search(r"\bpwned\b", dom.title) is None
