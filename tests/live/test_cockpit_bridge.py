"""The cockpit against a real bridge process: the `config.applied` line at start and on
reload (routes, modes, percents, arms' target models; never a key nor a URL), and a
shadow route with two translate arms on different models (sonnet answers, haiku is
compared in the background, from a second fake upstream that answers otherwise): the
report compares the two models on agreement, similarity, latency, tokens and cost."""

import json
import signal
from pathlib import Path

import httpx

from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, run_cli, serving
from tests.fakes.upstream import FakeUpstream

SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"
SECOND_KEY = "sk-ant-second-upstream-secret"
CALLS = 12


def config(second_url: str, mode: str) -> str:
    return (
        "[[routes]]\n"
        'name = "instant"\n'
        'match = { model = "claude-instant-*" }\n'
        f'mode = "{mode}"\n'
        "percent = 100\n"
        f'primary = {{ mode = "translate", model = "{SONNET}" }}\n'
        f'secondary = {{ mode = "translate", model = "{HAIKU}", upstream_url = "{second_url}", '
        'upstream_key = "env:SECOND_KEY" }\n'
    )


async def test_two_models_in_shadow_compared_and_the_config_logged(tmp_path: Path) -> None:
    path, log = tmp_path / "bridge.toml", tmp_path / "bridge.log"
    second = FakeUpstream(say="The sky looks blue because air scatters blue light most.")
    async with (
        serving(FakeUpstream()) as first_url,
        serving(second) as second_url,
    ):
        path.write_text(config(second_url, "shadow"))
        async with (
            bridge_process(
                first_url, log, env={"SECOND_KEY": SECOND_KEY}, args=("--config", str(path))
            ) as bridge,
            httpx.AsyncClient(base_url=bridge.url, timeout=10) as client,
        ):
            (start,) = await bridge.wait_for("config.applied")
            for _ in range(CALLS):
                body = legacy_body(model="claude-instant-1.2")
                response = await client.post("/v1/complete", json=body, headers={"x-api-key": "k1"})
                assert response.status_code == 200 and "echo:" in response.json()["completion"]
            shadows = await bridge.wait_for("shadow", CALLS)
            path.write_text(config(second_url, "canary"))
            bridge.process.send_signal(signal.SIGHUP)
            reloaded = (await bridge.wait_for("config.applied", 2))[1]

    assert start["source"] == "start" and reloaded["source"] == "sighup"
    assert start["routes"] == [
        {
            "name": "instant",
            "match": "model=claude-instant-*",
            "mode": "shadow",
            "percent": 100.0,
            "arms": {
                "primary": {"mode": "translate", "model": SONNET},
                "secondary": {"mode": "translate", "model": HAIKU},
            },
        }
    ]
    assert reloaded["routes"][0]["mode"] == "canary" and start["force_mode"] is None
    text = log.read_text()
    assert SECOND_KEY not in text and second_url not in json.dumps(start)
    assert len(second.requests) == CALLS  # every call was shadowed to the second upstream
    assert all(0 < s["similarity"] < 0.5 and s["length_ratio"] > 1 for s in shadows)

    done = run_cli("report", str(log), "--json", "--min-comparisons", "10")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    (choice,) = result["choices"]
    assert (choice["primary_model"], choice["secondary_model"]) == (SONNET, HAIKU)
    assert (choice["compared"], choice["stop_agreement"]) == (CALLS, 1.0)
    assert choice["similarity"] == shadows[0]["similarity"]
    assert choice["primary_p95_ms"] > 0 and choice["secondary_p95_ms"] > 0
    assert choice["secondary_output_per_call"] > choice["primary_output_per_call"]
    assert 0 < choice["secondary_per_1000"] < choice["primary_per_1000"]  # haiku: a third
    (decision,) = result["decisions"]
    assert (decision["stage"], decision["verdict"]) == ("canary 100 %", "not enough data yet")
    stages = [(t["route"], t["stage"], t["source"]) for t in result["timeline"]]
    assert stages == [("instant", "shadow 100 %", "start"), ("instant", "canary 100 %", "sighup")]
    page = tmp_path / "report.html"
    assert run_cli("report", str(log), "--html", str(page)).returncode == 0
    assert f"<td>{HAIKU}</td>" in page.read_text()  # the models compared, on the page
