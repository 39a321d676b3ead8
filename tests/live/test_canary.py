"""Keys never leak: a real bridge process serves every kind of request and failure with
canary keys planted in each place a key can be, then everything it produced (its log,
every response's status line, headers and body) is searched for them."""

import asyncio
from pathlib import Path

import httpx

from tests.fakes.factories import legacy_body
from tests.fakes.servers import bridge_process, serving
from tests.fakes.upstream import FakeUpstream

CLIENT = "sk-ant-api03-CANARYclientKEY"
BEARER = "sk-ant-api03-CANARYbearerTOKEN"
ISSUED = "cb-CANARY-issued-key"
HELD = "sk-ant-api03-CANARYheldUPSTREAMkey"
CANARIES = (CLIENT, BEARER, ISSUED, HELD)


def prompt(text: str) -> str:
    return f"\n\nHuman: {text}\n\nAssistant:"


async def produce(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    """Every kind of answer the bridge gives; each as the text a client could see."""
    v2 = {"anthropic-version": "2023-06-01", **auth}
    calls = [
        client.post("/v1/complete", json=legacy_body(), headers=v2),
        client.post("/v1/complete", json=legacy_body(stream=True), headers=auth),
        client.post("/v1/complete", json=legacy_body(stream=True), headers=v2),
        client.post("/v1/complete", json=legacy_body(prompt=prompt("FAIL 529")), headers=v2),
        client.post("/v1/complete", json=legacy_body(prompt=prompt("FAIL 401")), headers=v2),
        client.post(
            "/v1/complete",
            json=legacy_body(prompt=prompt("MIDSTREAM_ERROR"), stream=True),
            headers=v2,
        ),
        client.post("/v1/complete", json=legacy_body(prompt="no turns"), headers=v2),
        client.post("/v1/complete", content=b"{not json", headers=v2),
        client.post("/v1/complete", content=b"x" * 2048, headers=v2),  # over the limit
        client.get("/v1/models", headers=v2),
        client.post("/v1/complete", json=legacy_body(), headers={**v2, "x-api-key": BEARER}),
    ]
    seen = []
    for response in await asyncio.gather(*calls):
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        seen.append(f"{response.status_code}\n{headers}\n\n{response.text}")
    return seen


async def test_no_key_reaches_a_log_or_a_response(tmp_path: Path) -> None:
    keys = tmp_path / "client-keys"
    keys.write_text(ISSUED + "\n")
    transparent = {"BRIDGE_MAX_BODY_BYTES": "1024", "BRIDGE_LOG_TEXT": "true"}
    shared = {
        **transparent,
        "BRIDGE_CLIENT_KEYS": f"file:{keys}",
        "BRIDGE_UPSTREAM_KEY": "env:CANARY_UPSTREAM_KEY",
        "CANARY_UPSTREAM_KEY": HELD,
    }
    upstream = FakeUpstream()
    async with serving(upstream) as upstream_url:
        async with (
            bridge_process(upstream_url, tmp_path / "transparent.log", transparent) as first,
            httpx.AsyncClient(base_url=first.url, timeout=10) as client,
        ):
            seen = await produce(client, {"x-api-key": CLIENT})
            seen += await produce(client, {"authorization": f"Bearer {BEARER}"})
        async with (
            bridge_process(
                upstream_url, tmp_path / "shared.log", shared, ("--host", "0.0.0.0")
            ) as second,
            httpx.AsyncClient(base_url=second.url, timeout=10) as client,
        ):
            seen += await produce(client, {"x-api-key": ISSUED})
            seen += await produce(client, {"authorization": f"Bearer {ISSUED}"})
    logs = [(tmp_path / name).read_text() for name in ("transparent.log", "shared.log")]

    # The canaries were really used: the upstream got them, the logs are not empty.
    sent = {r.headers.get("x-api-key") or r.headers.get("authorization") for r in upstream.requests}
    assert {CLIENT, f"Bearer {BEARER}", HELD} <= sent
    assert all(log.count('"event":"complete"') >= 18 for log in logs)
    assert any("401" in answer.split("\n")[0] for answer in seen)
    for canary in CANARIES:
        for log in logs:
            assert canary not in log
        for answer in seen:
            assert canary not in answer
