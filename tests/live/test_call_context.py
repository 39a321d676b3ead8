"""The request context, seen in a real bridge's log: every line a call writes carries
its `call_id` (and, once routed, its `route`), each call has its own, and each call
writes exactly one canonical line with a fixed set of fields."""

import json
from pathlib import Path

import httpx
from starlette.types import Receive, Scope, Send

from proxy.obs.record import CompleteRecord, PassthroughRecord, field_names
from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, serving
from tests.fakes.upstream import FakeUpstream

V2 = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}


async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that is always overloaded, and says retrying is fine (in 1 ms)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    headers = [(b"content-type", b"application/json"), (b"retry-after-ms", b"1")]
    await send({"type": "http.response.start", "status": 529, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def test_every_line_of_a_call_carries_its_call_id_and_route(tmp_path: Path) -> None:
    """Calls an overloaded upstream refuses with 529 are retried twice: each call's
    `upstream.retry` lines and its `complete` line share one call_id and the route; each
    call has its own id; a pass-through call has its own id and no route."""
    log = tmp_path / "bridge.log"
    async with (
        serving(overloaded) as upstream_url,
        bridge_process(upstream_url, log, env={"BRIDGE_RETRIES": "2"}) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
    ):
        for _ in range(2):
            refused = await client.post("/v1/complete", json=legacy_body(), headers=V2)
            assert refused.status_code == 529
        other = await client.get("/v1/models", headers=V2)
        assert other.status_code == 529
        await bridge.wait_for("passthrough")
        lines = bridge.log()
    retries = [line for line in lines if line["event"] == "upstream.retry"]
    completes = [line for line in lines if line["event"] == "complete"]
    (passthrough,) = [line for line in lines if line["event"] == "passthrough"]
    assert len(completes) == 2 and len(retries) == 6  # two for each of the three calls
    first, second = completes
    assert first["status"] == 529 and first["error_type"] == "overloaded_error"
    for call in completes:
        assert sum(line["call_id"] == call["call_id"] for line in retries) == 2
    assert sum(line["call_id"] == passthrough["call_id"] for line in retries) == 2
    assert all(line["route"] == "default" for line in retries if "route" in line)
    assert sum("route" in line for line in retries) == 4
    ids = {first["call_id"], second["call_id"], passthrough["call_id"]}
    assert len(ids) == 3 and all(len(i) == 16 for i in ids)
    assert "route" not in passthrough
    unrelated = [line for line in lines if line["event"].startswith("bridge.")]
    assert unrelated and not any("call_id" in line for line in unrelated)


async def test_each_call_writes_one_line_with_every_field_of_its_record(tmp_path: Path) -> None:
    """A translated call, a refused one and a pass-through one: one line each, with
    exactly their record's fields (null where not known), texts only with log_text."""
    log = tmp_path / "bridge.log"
    async with (
        serving(FakeUpstream()) as upstream_url,
        bridge_process(upstream_url, log) as bridge,
        httpx.AsyncClient(base_url=bridge.url, timeout=30) as client,
    ):
        assert (await client.post("/v1/complete", json=legacy_body(), headers=V2)).is_success
        bad = await client.post("/v1/complete", content=b"{not json", headers=V2)
        assert bad.status_code == 400
        assert (await client.get("/v1/models", headers=V2)).status_code == 404
        await bridge.wait_for("passthrough")
        lines = bridge.log()
    completes = [line for line in lines if line["event"] == "complete"]
    (passthrough,) = [line for line in lines if line["event"] == "passthrough"]
    fields = set(field_names(CompleteRecord)) - {"prompt", "completion"}
    common = {"event", "level", "timestamp", "call_id"}
    for line in completes:
        assert set(line) - common == fields
    ok, refused = completes
    assert ok["upstream_status"] == 200 and ok["turns"] == 2
    assert refused["route"] == "(unrouted)" and refused["arm"] is None
    assert refused["legacy_model"] is None and refused["error_type"] == "invalid_request_error"
    assert set(passthrough) - common == set(field_names(PassthroughRecord))
