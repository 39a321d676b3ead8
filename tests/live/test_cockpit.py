"""The migration cockpit of `complete-bridge report`, on synthetic logs with known
answers, through the CLI: each route's stage and verdict (ready, hold, not enough data
yet, worse on latency only, 0 % agreement), the config change for the next step, the
stage timeline from `config.applied` lines, arms side by side, callers with what served
them, cost ("unknown", never 0, for pass-through), and the [report] table. The same
verdicts in text and --json, whatever the order and split of the files."""

import json
import os
import random
import re
import shutil
import struct
import subprocess
import tomllib
import zlib
from pathlib import Path
from typing import Any

import pytest

from proxy.config.file import from_file
from proxy.config.settings import ConfigError, Settings
from proxy.report import build_report, render_html, render_json, render_text
from tests.fakes.servers import run_cli

T0 = "2025-06-01T10:00:00Z"
SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"
CALLERS = ["aaaaaaaaaaa1", "aaaaaaaaaaa2", "aaaaaaaaaaa3"]


def calls(
    route: str,
    arm: str,
    mode: str,
    n: int,
    *,
    errors: int = 0,
    ms: float = 100.0,
    model: str = SONNET,
    adaptations: tuple[str, ...] = (),
    day: str = "2025-06-02",
) -> list[str]:
    """`n` complete lines on one arm: the first `errors` answered 500; durations spread
    from `ms` to `ms` + 9; tokens 100 in, 50 out when translated, none when passed on."""
    tokens = mode == "translate"
    return [
        json.dumps(
            {
                "event": "complete",
                "timestamp": f"{day}T10:{i % 60:02d}:00Z",
                "route": route,
                "arm": arm,
                "mode": mode,
                "caller": CALLERS[i % 3],
                "legacy_model": "claude-instant-1.2",
                "upstream_model": model if tokens else None,
                "format": "v1",
                "stream": False,
                "status": 500 if i < errors else 200,
                "error_type": "api_error" if i < errors else None,
                "input_tokens": 100 if tokens else None,
                "output_tokens": 50 if tokens else None,
                "adaptations": list(adaptations),
                "ttfb_ms": ms / 10,
                "duration_ms": ms + i % 10,
                "client_disconnected": False,
            }
        )
        for i in range(n)
    ]


def shadows(
    route: str, n: int, *, agree: int, similarity: float, failed: int = 0, ms: float = 100.0
) -> list[str]:
    """`n` shadow lines: the first `failed` failed, then `agree` with the same stop reason."""
    out = []
    for i in range(n):
        ok = i >= failed
        out.append(
            json.dumps(
                {
                    "event": "shadow",
                    "timestamp": "2025-06-02T11:00:00Z",
                    "route": route,
                    "status": 200 if ok else 500,
                    "error_type": None if ok else "api_error",
                    "skipped": False,
                    "stop_match": ok and i - failed < agree,
                    "exact_match": False,
                    "normalised_match": False,
                    "similarity": similarity if ok else None,
                    "length_ratio": 0.8 if ok else None,
                    "duration_ms": ms + i % 10,
                }
            )
        )
    return out


def applied(at: str, source: str, *routes: dict[str, Any], force: str | None = None) -> str:
    return json.dumps(
        {
            "event": "config.applied",
            "timestamp": at,
            "source": source,
            "generation": 1,
            "force_mode": force,
            "routes": list(routes),
        }
    )


def route(
    name: str, mode: str, percent: float | None = None, **arms: tuple[str, str | None]
) -> dict[str, Any]:
    return {
        "name": name,
        "match": "model=claude-instant-*",
        "mode": mode,
        "percent": percent,
        "arms": {arm: {"mode": m, "model": model} for arm, (m, model) in arms.items()},
    }


SHADOW_ARMS = {"primary": ("passthrough", None), "secondary": ("translate", HAIKU)}
CANARY_ARMS = {"primary": ("passthrough", None), "secondary": ("translate", HAIKU)}
CONFIG = [
    route("ready", "shadow", 10, **SHADOW_ARMS),
    route("disagree", "shadow", 10, **SHADOW_ARMS),
    route("erring", "canary", 10, **CANARY_ARMS),
    route("young", "canary", 10, **CANARY_ARMS),
    route("slow", "canary", 25, **CANARY_ARMS),
    route("legacy", "passthrough", primary=("passthrough", None)),
]
LOG = [
    applied(
        "2025-06-01T09:00:00Z",
        "start",
        route("ready", "passthrough", primary=("passthrough", None)),
    ),
    applied("2025-06-01T10:00:00Z", "file", *CONFIG),
    applied("2025-06-01T10:05:00Z", "start", *CONFIG),  # a second replica: no change
    *calls("ready", "primary", "passthrough", 400),
    *shadows("ready", 400, agree=397, similarity=0.92),
    *calls("disagree", "primary", "passthrough", 400),
    *shadows("disagree", 400, agree=0, similarity=0.1),
    *calls("erring", "primary", "passthrough", 400, errors=2),
    *calls("erring", "secondary", "translate", 300, errors=24, model=HAIKU),
    *calls("young", "primary", "passthrough", 400),
    *calls("young", "secondary", "translate", 40, model=HAIKU),
    *calls("slow", "primary", "passthrough", 400, ms=100),
    *calls("slow", "secondary", "translate", 300, ms=400, model=HAIKU, adaptations=("local_stop",)),
    *calls("legacy", "primary", "passthrough", 250),
]


def report(tmp_path: Path, lines: list[str], *args: str) -> dict[str, Any]:
    log = tmp_path / "bridge.log"
    log.write_text("\n".join(lines) + "\n")
    done = run_cli("report", str(log), "--json", *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def decisions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["route"]: d for d in result["decisions"]}


def test_verdicts_of_known_routes(tmp_path: Path) -> None:
    """Ready, hold on errors, not enough data, hold on latency only, hold on 0 %
    agreement, and a pass-through ready for a shadow: each with its reasons."""
    d = decisions(report(tmp_path, LOG))
    assert {name: (x["stage"], x["verdict"], x["next_step"]) for name, x in d.items()} == {
        "ready": ("shadow 10 %", "ready", "canary 10 %"),
        "disagree": ("shadow 10 %", "hold", "hold at shadow 10 %"),
        "erring": ("canary 10 %", "hold", "hold at canary 10 %"),
        "young": ("canary 10 %", "not enough data yet", "keep the canary"),
        "slow": ("canary 25 %", "hold", "hold at canary 25 %"),
        "legacy": ("passthrough", "ready", "shadow 10 %"),
    }
    assert d["ready"]["reasons"] == [
        "400 compared, stop reason agrees 99.2%, text similar 92.0%, secondary errors 0.0% "
        "(95% CI 0.0%-1.0%)"
    ]
    assert any("stop reason agrees 0.0%, below 95.0%" in r for r in d["disagree"]["reasons"])
    assert any("text similar 10.0%, below 60.0%" in r for r in d["disagree"]["reasons"])
    erring = d["erring"]["reasons"]
    assert "secondary error rate 8.0% (95% CI 5.4%-11.6%) vs primary 0.5%" in erring[0]
    assert any("difference significant at 95%" in r for r in erring)
    assert not any("p95" in r and "slower" in r for r in erring)
    slow = d["slow"]["reasons"]
    assert len(slow) == 2 and "slower by more than 20%" in slow[1]  # latency only
    assert not any("error rate worse" in r or "above" in r for r in slow)
    assert d["young"]["reasons"] == ["40 secondary and 400 primary calls, 200 needed on each"]
    assert all(x["toml"] is None for x in d.values() if x["verdict"] != "ready")


def test_the_next_step_is_a_config_change_in_toml(tmp_path: Path) -> None:
    """A ready shadow's TOML makes it a canary at the first step, same arms; a ready
    pass-through's a shadow with a translate secondary; the last canary step gives a
    translate route on the secondary's model."""
    log = [
        *LOG,
        applied(
            "2025-06-03T00:00:00Z",
            "sighup",
            *CONFIG[:5],
            route("legacy", "canary", 50, **CANARY_ARMS),
        ),
    ]
    log += calls("legacy", "secondary", "translate", 250, model=HAIKU, day="2025-06-03")
    d = decisions(report(tmp_path, LOG))
    ready = tomllib.loads(d["ready"]["toml"])["routes"][0]
    assert ready == {
        "name": "ready",
        "mode": "canary",
        "percent": 10,
        "primary": {"mode": "passthrough"},
        "secondary": {"mode": "translate", "model": HAIKU},
    }
    legacy = tomllib.loads(d["legacy"]["toml"])["routes"][0]
    assert legacy == {
        "name": "legacy",
        "mode": "shadow",
        "percent": 10,
        "primary": {"mode": "passthrough"},
        "secondary": {"mode": "translate"},
    }
    last = decisions(report(tmp_path, log, "--min-requests", "100"))["legacy"]
    assert (last["stage"], last["verdict"], last["next_step"]) == (
        "canary 50 %",
        "ready",
        "translate",
    )
    assert tomllib.loads(last["toml"])["routes"][0] == {
        "name": "legacy",
        "mode": "translate",
        "model": HAIKU,
    }


def test_a_log_without_config_lines_reads_the_stage_from_the_calls(tmp_path: Path) -> None:
    """Before config.applied lines: a route with secondary calls is a canary (its share
    of calls), one with shadow lines a shadow, and the decision says it guessed."""
    d = decisions(report(tmp_path, [x for x in LOG if "config.applied" not in x]))
    assert (d["erring"]["stage"], d["erring"]["verdict"]) == ("canary 43 %", "hold")
    assert (d["ready"]["stage"], d["ready"]["verdict"]) == ("shadow", "ready")
    assert d["ready"]["toml"] is None  # its secondary arm is in no line: no half a config
    assert d["legacy"]["toml"] is not None  # a shadow of its one known arm, translated
    assert (d["legacy"]["stage"], d["legacy"]["verdict"]) == ("passthrough", "ready")
    assert all(
        x["reasons"][-1] == "stage read from the calls: no config.applied line" for x in d.values()
    )


def test_timeline_from_config_applied_lines(tmp_path: Path) -> None:
    """Each route's stage changes, in time order; a replica starting on the same config
    is no change; a reload that sets force_mode is one, and holds every route."""
    result = report(
        tmp_path, [*LOG, applied("2025-06-04T00:00:00Z", "sighup", *CONFIG, force="passthrough")]
    )
    changes = [(t["route"], t["stage"], t["at"]) for t in result["timeline"]]
    assert changes[:2] == [
        ("ready", "passthrough", "2025-06-01T09:00:00Z"),
        ("ready", "shadow 10 %", "2025-06-01T10:00:00Z"),
    ]
    assert len(changes) == 2 + 5 + 1 and changes[-1] == (
        "(all routes)",
        "force_mode passthrough",
        "2025-06-04T00:00:00Z",
    )
    assert result["force_mode"] == "passthrough"
    assert {x["verdict"] for x in result["decisions"]} == {"hold"}
    assert decisions(result)["ready"]["toml"] == 'force_mode = ""'


def test_the_same_verdicts_whatever_the_order_or_split_of_files(tmp_path: Path) -> None:
    """Replicas' logs merged: the lines shuffled and split in two files give the same
    report as one file in order, and the text carries the JSON's verdicts."""
    whole = report(tmp_path, LOG)
    lines = LOG[:]
    random.Random(7).shuffle(lines)
    (tmp_path / "a.log").write_text("\n".join(lines[::2]) + "\n")
    (tmp_path / "b.log").write_text("\n".join(lines[1::2]) + "\n")
    done = run_cli("report", str(tmp_path / "a.log"), str(tmp_path / "b.log"), "--json")
    merged = json.loads(done.stdout)
    for key in ("decisions", "arms", "costs", "timeline", "callers"):
        assert merged[key] == whole[key], key
    text = run_cli("report", str(tmp_path / "bridge.log")).stdout
    for d in whole["decisions"]:
        assert f"{d['route']}: {d['stage']} -> {d['verdict']}: {d['next_step']}" in text
    assert text.index("Decisions") < text.index("Arms side by side") < text.index("Callers:")
    assert max(len(x) for x in text.splitlines()) <= 100


def test_arms_side_by_side_and_callers_with_what_served_them(tmp_path: Path) -> None:
    result = report(tmp_path, LOG)
    arms = {(a["route"], a["arm"]): a for a in result["arms"]}
    erring = arms[("erring", "secondary")]
    assert (erring["requests"], erring["errors"], erring["error_rate"]) == (300, 24, 0.08)
    assert (erring["input_per_call"], erring["output_per_call"], erring["models"]) == (
        100,
        50,
        [HAIKU],
    )
    slow_p, slow_s = arms[("slow", "primary")], arms[("slow", "secondary")]
    assert (slow_p["p50_ms"], slow_s["p50_ms"], slow_s["p95_ms"]) == (104, 404, 409)
    assert slow_s["p95_interval"][0] > slow_p["p95_interval"][1]
    assert (slow_s["adapted"], slow_p["adapted"]) == (300, 0)
    callers = {c["caller"]: c for c in result["callers"]}
    first = callers[CALLERS[0]]
    assert "legacy / primary / passthrough (84)" in first["served"]
    assert first["flags"][0].startswith("still on pass-through (")
    assert first["adaptations"] == [["local_stop", 100]]
    assert "prompts need adaptations: local_stop" in first["flags"][1]


def test_cost_is_unknown_for_pass_through_never_zero(tmp_path: Path) -> None:
    """Translated calls are priced (haiku 4.5: $1 in, $5 out per million), pass-through
    calls are unknown; [report.prices] in the config overrides a price."""
    result = report(tmp_path, LOG)
    costs = {(c["scope"], c["name"]): c for c in result["costs"]}
    legacy = costs[("route", "legacy")]
    assert (legacy["cost"], legacy["unknown_calls"], legacy["cost_per_1000"]) == (None, 250, None)
    haiku = costs[("model", HAIKU)]  # 640 calls of 100 in, 50 out
    assert (haiku["calls"], haiku["cost"], haiku["cost_per_1000"]) == (640, 0.224, 0.35)
    arms = {(a["route"], a["arm"]): a["cost"] for a in result["arms"]}
    assert arms[("legacy", "primary")] == "unknown" and arms[("young", "secondary")] == "$0.0140"
    assert result["prices_taken"].startswith("20")
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[report]\nmin_comparisons = 1000\n[report.prices."{HAIKU}"]\ninput = 2.0\noutput = 10.0\n'
    )
    changed = report(tmp_path, LOG, "--config", str(config))
    haiku = {(c["scope"], c["name"]): c for c in changed["costs"]}[("model", HAIKU)]
    assert haiku["cost_per_1000"] == 0.7
    assert decisions(changed)["ready"]["verdict"] == "not enough data yet"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[report]\nmin_requests = 0\n",
            "bridge.toml:2: report.min_requests: expected a whole number >= 1",
        ),
        ("[report]\nbogus = 1\n", "bridge.toml:2: report: unknown key 'bogus'"),
        (
            '[report.prices.x]\ninput = "cheap"\noutput = 1\n',
            "report.prices.x: expected input = and output =",
        ),
        ("[report]\ncanary_steps = [50, 10]\n", "report.canary_steps: expected rising percents"),
    ],
)
def test_a_bad_report_table_is_one_line_naming_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(toml)
    done = run_cli("report", "--config", str(config), stdin="")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    with pytest.raises(ConfigError, match=re.escape(message.split(": ", 1)[1])):
        from_file(Settings(), config)  # the bridge's own config reader says the same


def test_a_report_table_sets_every_threshold(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        "[report]\nmin_requests = 10\nmin_comparisons = 5\nmin_stop_agreement = 0.5\n"
        "min_similarity = 0.05\nmax_error_rate = 0.2\nlatency_tolerance = 5\n"
        "confidence = 0.99\ncanary_steps = [5, 100]\nshadow_percent = 50\nquiet_days = 1\n"
    )
    lenient = from_file(Settings(), config).report
    assert (lenient.min_requests, lenient.canary_steps, lenient.quiet_days) == (10, (5.0, 100.0), 1)
    d = decisions(json.loads(render_json(build_report(LOG, config=lenient))))
    assert d["disagree"]["verdict"] == "hold"  # 0 % agreement is below even 50 %
    assert (d["slow"]["verdict"], d["slow"]["next_step"]) == ("ready", "translate")
    assert (d["young"]["verdict"], d["legacy"]["next_step"]) == ("ready", "shadow 50 %")


def test_in_process_report_is_the_cli_report(tmp_path: Path) -> None:
    """build_report in process gives the CLI's decisions, timeline and costs; its text
    and page carry every verdict (the CLI tests above run in a subprocess)."""
    log = [*LOG, applied("2025-06-04T00:00:00Z", "sighup", *CONFIG[:4])]
    log += calls("done", "primary", "translate", 5, day="2025-05-01")
    log += [
        applied(
            "2025-06-04T00:00:01Z",
            "sighup",
            *CONFIG[:4],
            route("done", "translate", primary=("translate", HAIKU)),
        )
    ]
    pick = route(
        "pick", "shadow", 10, primary=("translate", SONNET), secondary=("translate", HAIKU)
    )
    done = route("done", "translate", primary=("translate", HAIKU))
    log += [applied("2025-06-04T00:00:02Z", "file", *CONFIG[:4], done, pick)]
    log += calls("pick", "primary", "translate", 20) + shadows("pick", 20, agree=20, similarity=0.7)
    cli = report(tmp_path, log)
    here = json.loads(render_json(build_report(log)))
    (choice,) = here["choices"]
    assert (choice["primary_model"], choice["secondary_model"]) == (SONNET, HAIKU)
    assert (choice["primary_output_per_call"], choice["secondary_output_per_call"]) == (50, 40)
    # sonnet: 100 x $3 + 50 x $15; haiku: 100 x $1 + 40 x $5, per million, x 1,000 calls
    assert (choice["primary_per_1000"], choice["secondary_per_1000"]) == (1.05, 0.3)
    for key in ("decisions", "timeline", "costs", "arms", "choices"):
        assert here[key] == cli[key], key
    assert decisions(here)["done"]["stage"] == "legacy off"
    assert decisions(here)["slow"]["stage"] == "removed"  # by the reload of June 4
    assert [t["stage"] for t in here["timeline"] if t["route"] in ("slow", "legacy")][-2:] == [
        "removed",
        "removed",
    ]
    text, page = render_text(build_report(log)), render_html(build_report(log))
    assert "Models compared in shadow" in text and 'id="choices"' in page
    for d in here["decisions"]:
        assert f"{d['route']}: {d['stage']} -> {d['verdict']}" in text
        assert f">{d['verdict']}</span>" in page


def test_the_page_puts_decisions_first(tmp_path: Path) -> None:
    """--html: decisions, then arms, callers, adaptations, cost, then the details; the
    page carries the JSON's verdicts and next steps."""
    page = tmp_path / "report.html"
    log = tmp_path / "bridge.log"
    log.write_text("\n".join(LOG) + "\n")
    assert run_cli("report", str(log), "--html", str(page)).returncode == 0
    html = page.read_text()
    order = ['id="decisions"', 'id="arms"', 'id="caller-routes"', 'id="adaptations"']
    order += ['id="costs"', "<h2>Details</h2>", 'id="callers"', 'id="timeline"']
    places = [html.index(marker) for marker in order]
    assert places == sorted(places)
    table = html[
        html.index('id="decisions"') : html.index("</table>", html.index('id="decisions"'))
    ]
    for d in report(tmp_path, LOG)["decisions"]:
        assert table.count(f"<td>{d['route']}</td><td>{d['stage']}</td>") == 1
        assert f">{d['verdict']}</span>" in table and d["next_step"] in table


def png_pixels(data: bytes) -> tuple[int, int, list[bytearray]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + size
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp, raw = 3 if color == 2 else 4, zlib.decompress(idat)
    stride, rows, previous = width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, row = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                near = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                row[i] = (row[i] + near) & 0xFF
        rows.append(row if bpp == 3 else bytearray(b for j, b in enumerate(row) if j % 4 != 3))
        previous = row
    return width, height, rows


END_BAR = bytes((0x0B, 0x6E, 0x4F))  # the decision table's last row (#decisions td.end)
BADGES = {"hold": bytes((0xC8, 0x42, 0x3B)), "ready": bytes((0x2E, 0x7D, 0x32))}


@pytest.mark.browser
def test_the_decision_table_is_visible_without_scrolling(tmp_path: Path) -> None:
    """A screenshot of the page at 1400x900 in headless Chromium, with 60 callers (whose
    rows once pushed the decisions far down): the decision table's end bar and its verdict
    badges are in it. With COCKPIT_SCREENSHOT=PATH the screenshot is kept there (how
    docs/cockpit.png is made)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is required (apt-get install chromium); .ci/run installs it"
    many = [
        x.replace(f'"{CALLERS[0]}"', f'"{n:012x}"')
        for n in range(60)
        for x in calls("legacy", "primary", "passthrough", 3)
    ]
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    (tmp_path / "bridge.log").write_text("\n".join([*LOG, *many]) + "\n")
    assert run_cli("report", str(tmp_path / "bridge.log"), "--html", str(page)).returncode == 0
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    argv += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    argv += [f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,900"]
    argv += [f"--screenshot={shot}", page.as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 900)

    def seen(color: bytes) -> int:
        return sum(row.count(color) for row in rows if color in row)

    assert seen(END_BAR) > 1000  # a 4-pixel bar across the table
    assert all(seen(color) > 50 for color in BADGES.values())
    if target := os.environ.get("COCKPIT_SCREENSHOT"):
        shutil.copyfile(shot, target)
