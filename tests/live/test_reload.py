"""Hot reload of a real bridge process started with `--config FILE`: SIGHUP and the file
watcher swap a new config in whole, a config that does not load is refused and the old
one keeps answering, requests in flight finish on the config they started with, and the
kill switch (`force_mode`) sends every call one way.

Which config answered is told by the model the upstream is asked for: config A's route
"a" asks for claude-opus-5, config B's route "b" for claude-haiku-4-5, and the upstream
here answers "answered by <model>"."""

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.fakes.factories import legacy_body
from tests.fakes.servers import BridgeProcess, bridge_process, request_body, serving
from tests.fakes.sse import HEAD, TAIL, delta

KEY = {"x-api-key": "sk-ant-test-reload"}
V2 = {**KEY, "anthropic-version": "2023-06-01"}
OPUS, HAIKU = "claude-opus-5", "claude-haiku-4-5"
SIZE = 240  # every config file is padded to this size (see write_config's keep_stamp)
WAIT = 5.0  # the most any log line is waited for


def config(route: str, model: str, extra: str = "", arm: str = "") -> str:
    """A config file: `extra` settings, then one route for every call, asking for
    `model` (and `arm` overrides); padded to SIZE bytes so that two configs can swap
    without the file's (mtime, size) stamp changing."""
    text = f'{extra}[[routes]]\nname = "{route}"\nmodel = "{model}"\n{arm}'
    pad = SIZE - len(text.encode()) - 2
    assert pad >= 0, "config too long for SIZE"
    return text + "#" + "x" * pad + "\n"


CONFIG_A = config("a", OPUS)
CONFIG_B = config("b", HAIKU)
ANSWERS = {"a": OPUS, "b": HAIKU}  # route -> the model it asks for


def write_config(path: Path, text: str, *, keep_stamp: bool = False) -> None:
    """Replace the file atomically (the watcher never sees it half written). With
    `keep_stamp`, the new file keeps the old one's mtime (and must have its size), so the
    file watcher cannot see the change: only a SIGHUP can apply it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    if keep_stamp:
        old = path.stat()
        assert old.st_size == len(text.encode()), "keep_stamp needs a same-size file"
        os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tmp, path)


@dataclass
class Seen:
    """One call the upstream got."""

    path: str
    raw: bytes
    headers: dict[str, str]
    model: str | None


@dataclass
class ModelUpstream:
    """A Messages upstream that answers "answered by <the model asked for>", streamed or
    whole, with a `request-id` of its own; a prompt containing HOLD streams its first
    delta, then waits for `gate`. Any other path gets a 404 error envelope. Every call is
    recorded in `seen`."""

    seen: list[Seen] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await request_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        self.seen.append(Seen(scope["path"], raw, headers, model))
        number = len(self.seen)
        if scope["path"] != "/v1/messages":
            error = {"type": "error", "error": {"type": "not_found_error", "message": "gone"}}
            await self._respond(send, 404, error, number)
            return
        text = f"answered by {model}"
        if body.get("stream"):
            start = [(b"content-type", b"text/event-stream"), (b"request-id", b"req_%d" % number)]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            chunk = HEAD + delta(text)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if "HOLD" in json.dumps(body["messages"]):
                self.holding.set()
                await self.gate.wait()
                await send(
                    {"type": "http.response.body", "body": delta(" late"), "more_body": True}
                )
            await send({"type": "http.response.body", "body": TAIL})
            return
        message = {
            "id": f"msg_{number}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 3},
        }
        await self._respond(send, 200, message, number)

    @staticmethod
    async def _respond(send: Send, status: int, body: dict[str, Any], number: int) -> None:
        headers = [(b"content-type", b"application/json"), (b"request-id", b"req_%d" % number)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, first: str = CONFIG_A
) -> AsyncIterator[tuple[ModelUpstream, BridgeProcess, Path, httpx.AsyncClient]]:
    """The upstream, a bridge started with `--config` on a file holding `first`, the
    file, and a client of the bridge."""
    path = tmp_path / "bridge.toml"
    write_config(path, first)
    upstream = ModelUpstream()
    async with (
        serving(upstream) as upstream_url,
        bridge_process(upstream_url, tmp_path / "bridge.log", args=("--config", str(path))) as b,
        httpx.AsyncClient(base_url=b.url, timeout=10) as client,
    ):
        try:
            yield upstream, b, path, client
        finally:
            upstream.gate.set()


async def answered_by(client: httpx.AsyncClient) -> str:
    """Make a call; the model that answered it (200 required)."""
    response = await client.post("/v1/complete", json=legacy_body(), headers=KEY)
    assert response.status_code == 200, response.text
    completion: str = response.json()["completion"]
    assert completion.startswith(" answered by "), completion
    return completion.removeprefix(" answered by ")


async def complete_lines(
    bridge: BridgeProcess, request_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The `complete` log lines of the calls the upstream numbered `request_ids`, by id,
    once all are written (a stream's line follows its last byte by a moment)."""
    wanted = set(request_ids)
    async with asyncio.timeout(WAIT):
        while True:
            lines = [x for x in bridge.events("complete") if x.get("request_id") in wanted]
            if len(lines) >= len(request_ids):
                break
            await asyncio.sleep(0.02)
    by_id = {line["request_id"]: line for line in lines}
    assert len(by_id) == len(lines) == len(request_ids), "one log line per call"
    return by_id


async def test_sighup_applies_the_changed_file(tmp_path: Path) -> None:
    """SIGHUP after the file changed: the next calls use the new config, and the log has
    one `config.reloaded` line: generation 2, source sighup, its routes. (The new file
    keeps the old one's stamp, so the watcher cannot be the one applying it.)"""
    async with running(tmp_path) as (upstream, bridge, path, client):
        assert await answered_by(client) == OPUS
        write_config(path, CONFIG_B, keep_stamp=True)
        await asyncio.sleep(1.5)  # more than a poll: the watcher does not see the change
        assert await answered_by(client) == OPUS
        assert bridge.events("config.reloaded") == []
        bridge.process.send_signal(signal.SIGHUP)
        (line,) = await bridge.wait_for("config.reloaded")
        assert (line["generation"], line["source"]) == (2, "sighup")
        assert (line["routes"], line["force_mode"]) == (["b"], None)
        assert [await answered_by(client) for _ in range(3)] == [HAIKU] * 3
        assert [x.model for x in upstream.seen] == [OPUS, OPUS, HAIKU, HAIKU, HAIKU]
        # A call's log line follows its answer by a moment: wait for all five.
        routes = [x["route"] for x in await bridge.wait_for("complete", 5)]
        assert routes == ["a", "a", "b", "b", "b"]
        assert len(bridge.events("config.reloaded")) == 1


async def test_write_then_sighup_reloads_once(tmp_path: Path) -> None:
    """The usual operator sequence, write the file then SIGHUP, applies the change once:
    one `config.reloaded` line (generation 2), however long we wait after."""
    async with running(tmp_path) as (_, bridge, path, client):
        write_config(path, CONFIG_B)
        bridge.process.send_signal(signal.SIGHUP)
        (line,) = await bridge.wait_for("config.reloaded")
        # The signal is sent microseconds after the write; the watcher polls once a
        # second, so it practically never gets in first.
        assert (line["generation"], line["source"]) == (2, "sighup")
        assert await answered_by(client) == HAIKU
        await asyncio.sleep(2.5)  # more than two polls of the watcher
        reloads = bridge.events("config.reloaded")
        assert [(x["generation"], x["source"]) for x in reloads] == [(2, "sighup")]


async def test_a_file_change_alone_is_applied(tmp_path: Path) -> None:
    """No signal: the watcher sees the new file within a few seconds (source file)."""
    async with running(tmp_path) as (_, bridge, path, client):
        assert await answered_by(client) == OPUS
        started = time.monotonic()
        write_config(path, CONFIG_B)
        (line,) = await bridge.wait_for("config.reloaded")
        assert time.monotonic() - started < 3
        assert (line["generation"], line["source"], line["routes"]) == (2, "file", ["b"])
        assert await answered_by(client) == HAIKU
        await asyncio.sleep(1.5)  # another poll: an unchanged file is not reloaded again
        assert len(bridge.events("config.reloaded")) == 1


BAD_PERCENT = config(
    "c",
    OPUS,
    '[[routes]]\nname = "split"\nmode = "canary"\npercent = 150\n'
    'primary = { mode = "translate" }\nsecondary = { mode = "translate" }\n\n',
)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param('[[routes]]\nname = "b"\nmodel = \n', "not valid TOML", id="bad-toml"),
        pytest.param(BAD_PERCENT, "percent: expected a number from 0 to 100, got 150", id="pct"),
    ],
)
async def test_an_invalid_config_is_refused_and_the_old_one_kept(
    tmp_path: Path, text: str, named: str
) -> None:
    """A config that does not load: `config.rejected` naming the problem (from the signal
    and/or the watcher), no reload, the old config keeps answering, the process keeps
    serving; and a good config after it still applies, as generation 2."""
    async with running(tmp_path) as (_, bridge, path, client):
        assert await answered_by(client) == OPUS
        write_config(path, text)
        bridge.process.send_signal(signal.SIGHUP)
        rejected = await bridge.wait_for("config.rejected")
        await asyncio.sleep(1.2)  # let the watcher have its look too
        rejected = bridge.events("config.rejected")
        assert {x["source"] for x in rejected} <= {"sighup", "file"}
        for line in rejected:
            assert named in line["error"] and str(path) in line["error"], line
        assert bridge.events("config.reloaded") == []
        assert bridge.process.returncode is None
        assert (await client.get("/healthz")).status_code == 200
        assert [await answered_by(client) for _ in range(3)] == [OPUS] * 3
        assert {x["route"] for x in bridge.events("complete")} == {"a"}

        write_config(path, CONFIG_B)  # fixed: applied, and a refusal used no generation
        first, *_ = await bridge.wait_for("config.reloaded")
        assert (first["generation"], first["routes"]) == (2, ["b"])
        assert await answered_by(client) == HAIKU


async def test_a_stream_in_flight_finishes_on_its_config(tmp_path: Path) -> None:
    """A stream open across a reload (and two sweeps of unused upstream clients) ends
    intact on the old config: its model, its route in the log line, and its upstream
    client (config A's route has its own timeout, so its own client) still open."""
    config_a = config("a", OPUS, arm="first_byte_timeout = 30\n")
    async with running(tmp_path, config_a) as (upstream, bridge, path, client):
        body = legacy_body(stream=True, prompt="\n\nHuman: HOLD please\n\nAssistant:")
        async with client.stream("POST", "/v1/complete", json=body, headers=V2) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            while not (line := await anext(lines)).startswith("data:"):
                pass
            first = json.loads(line[5:])["completion"]
            async with asyncio.timeout(WAIT):
                await upstream.holding.wait()

            write_config(path, CONFIG_B, keep_stamp=True)
            bridge.process.send_signal(signal.SIGHUP)
            await bridge.wait_for("config.reloaded")
            assert await answered_by(client) == HAIKU  # new calls: the new config
            await asyncio.sleep(2.5)  # two sweeps of the clients no live config uses
            upstream.gate.set()
            async with asyncio.timeout(WAIT):
                rest = [json.loads(x[5:]) async for x in lines if x.startswith("data:")]
        text = first + "".join(event["completion"] for event in rest)
        assert text == f" answered by {OPUS} late"
        assert rest[-1]["stop_reason"] == "stop_sequence"
        held = (await complete_lines(bridge, ["req_1"]))["req_1"]
        assert (held["status"], held["route"], held["upstream_model"]) == (200, "a", OPUS)
        assert held.get("error_type") is None
        assert [x.model for x in upstream.seen] == [OPUS, HAIKU]


CLIENTS = 8  # concurrent callers
SWITCHES = 10  # config rewrites (each followed by SIGHUP)
SWITCH_EVERY = 0.4  # seconds


async def test_reload_under_load_fails_no_request(tmp_path: Path) -> None:
    """8 callers in a loop (one call in four streamed) for about 4 s while the config is
    switched A/B ten times (rewrite + SIGHUP): every call gets 200 and a right answer,
    and its log line's route and model are one config's, the same the answer names."""
    async with running(tmp_path) as (upstream, bridge, path, client):
        stop = asyncio.Event()
        results: list[tuple[int, str, str]] = []  # (status, request-id, model in answer)

        async def caller(number: int) -> None:
            calls = 0
            while not stop.is_set():
                calls += 1
                stream = (calls + number) % 4 == 0
                response = await client.post(
                    "/v1/complete", json=legacy_body(stream=stream), headers=V2
                )
                if stream:
                    data = [
                        json.loads(x[5:])
                        for x in response.text.splitlines()
                        if x.startswith("data:")
                    ]
                    text = "".join(e.get("completion", "") for e in data)
                    assert data and data[-1]["stop_reason"] == "stop_sequence", response.text
                else:
                    text = response.json().get("completion", response.text)
                model = text.strip().removeprefix("answered by ")
                results.append((response.status_code, response.headers["request-id"], model))

        async def switcher() -> None:
            for n in range(SWITCHES):
                await asyncio.sleep(SWITCH_EVERY)
                write_config(path, CONFIG_B if n % 2 == 0 else CONFIG_A)
                bridge.process.send_signal(signal.SIGHUP)
            await asyncio.sleep(SWITCH_EVERY)
            stop.set()

        async with asyncio.timeout(30):
            await asyncio.gather(switcher(), *(caller(n) for n in range(CLIENTS)))

        assert len(results) >= 50, len(results)
        assert all(status == 200 for status, _, _ in results), results
        lines = await complete_lines(bridge, [request_id for _, request_id, _ in results])
        for _, request_id, model in results:
            line = lines[request_id]
            assert line["route"] in ANSWERS, line
            assert ANSWERS[line["route"]] == line["upstream_model"] == model, line
        assert {model for _, _, model in results} == {OPUS, HAIKU}
        assert len(upstream.seen) == len(results)

        reloads = bridge.events("config.reloaded")
        assert len(reloads) >= SWITCHES
        assert [x["generation"] for x in reloads] == list(range(2, len(reloads) + 2))
        assert bridge.events("config.rejected") == []
        # The last switch wrote config A (ten switches, B first): it is what answers now.
        await asyncio.sleep(1.5)  # the watcher's last look
        assert await answered_by(client) == OPUS


async def test_the_kill_switch_passes_every_call_through_unchanged(tmp_path: Path) -> None:
    """`force_mode = "passthrough"` in the new file: every /v1/complete goes, byte for
    byte, to the upstream's /v1/complete, routes aside (the route's model is not
    applied); the log line says mode passthrough, route forced. Taking it out again
    gives the routes back."""
    forced = config("a", OPUS, 'force_mode = "passthrough"\n\n')
    async with running(tmp_path) as (upstream, bridge, path, client):
        assert await answered_by(client) == OPUS
        write_config(path, forced)
        bridge.process.send_signal(signal.SIGHUP)
        first, *_ = await bridge.wait_for("config.reloaded")
        assert first["force_mode"] == "passthrough"

        sent = b'{ "model":"claude-2.1",  "prompt":"\\n\\nHuman: hi\\n\\nAssistant:",\n'
        sent += b'"max_tokens_to_sample": 7, "x_unknown": [1, 2.50, "\\u00e9"] }'
        headers = {**KEY, "content-type": "application/json", "x-custom": "kept"}
        response = await client.post("/v1/complete", content=sent, headers=headers)
        assert response.status_code == 404  # this upstream no longer serves it
        assert response.json()["error"]["type"] == "not_found_error"
        call = upstream.seen[-1]
        assert (call.path, call.raw) == ("/v1/complete", sent)
        assert call.headers["x-api-key"] == KEY["x-api-key"]
        assert call.headers["x-custom"] == "kept"
        line = (await bridge.wait_for("complete", len(upstream.seen)))[-1]
        assert (line["mode"], line["route"], line["arm"]) == ("passthrough", "forced", "primary")
        assert (line["status"], line["upstream_model"]) == (404, "claude-2.1")

        write_config(path, CONFIG_A)  # the switch off: routes decide again
        bridge.process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(WAIT):
            while bridge.events("config.reloaded")[-1]["force_mode"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await answered_by(client) == OPUS
        assert (await bridge.wait_for("complete", len(upstream.seen)))[-1]["mode"] == "translate"
