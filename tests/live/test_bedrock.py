"""A real bridge process serving Bedrock legacy calls from boto3 (unmodified, in a thread):
its config file routes `anthropic.claude-instant-*` to the fake Bedrock Runtime (signed
with the AWS credentials of the bridge's environment, which the fake verifies) and the
rest to the fake Messages API with the bridge's key. Its JSON log names each call's
Bedrock model and holds none of the keys, secrets or tokens involved; the migration
report reads it back as who calls which legacy Bedrock model."""

import asyncio
import contextlib
import json
from pathlib import Path

from proxy.rollout.routes import fingerprint
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.bedrock_apps import invoke, stream
from tests.fakes.servers import bridge_process, run_cli, serving
from tests.fakes.upstream import FakeUpstream

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIDLIVEBRIDGE",
    "AWS_SECRET_ACCESS_KEY": "live-bridge-secret",
    "AWS_SESSION_TOKEN": "live-bridge-token",
    "LIVE_UPSTREAM_KEY": "sk-live-upstream",
}


async def test_a_bridge_process_serves_both_routes(tmp_path: Path) -> None:
    bedrock = FakeBedrock(
        SECRETS["AWS_ACCESS_KEY_ID"],
        SECRETS["AWS_SECRET_ACCESS_KEY"],
        SECRETS["AWS_SESSION_TOKEN"],
    )
    messages = FakeUpstream()
    async with contextlib.AsyncExitStack() as stack:
        bedrock_url = await stack.enter_async_context(serving(bedrock))
        messages_url = await stack.enter_async_context(serving(messages))
        config = tmp_path / "bridge.toml"
        config.write_text(
            'upstream_key = "env:LIVE_UPSTREAM_KEY"\n\n'
            "[[routes]]\n"
            'name = "bedrock-instant"\n'
            'match = { model = "anthropic.claude-instant-*" }\n'
            'mode = "translate"\n'
            f'upstream_url = "{bedrock_url}"\n'
            'upstream_aws_region = "us-east-1"\n'
            'model = "us.anthropic.claude-haiku-4-5-20251001-v1:0"\n'
        )
        env = {
            **SECRETS,
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        bridge = await stack.enter_async_context(
            bridge_process(messages_url, tmp_path / "bridge.log", env, ("--config", str(config)))
        )
        instant = await asyncio.to_thread(invoke, bridge.url, "anthropic.claude-instant-v1")
        chunks = await asyncio.to_thread(stream, bridge.url)  # anthropic.claude-v2:1
        lines = await bridge.wait_for("complete", 2)
    assert instant["body"]["completion"] == " echo: Hello there"
    assert "".join(c["completion"] for c in chunks) == " echo: Hello there"
    [signed] = bedrock.requests
    assert signed.path == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke"
    [translated] = messages.requests
    assert translated.headers["x-api-key"] == SECRETS["LIVE_UPSTREAM_KEY"]
    assert [(line["route"], line["bedrock_model"], line["status"]) for line in lines] == [
        ("bedrock-instant", "anthropic.claude-instant-v1", 200),
        ("default", "anthropic.claude-v2:1", 200),
    ]
    log = (tmp_path / "bridge.log").read_text()
    for secret in [*list(SECRETS.values())[1:], "app-secret"]:  # the key id may show
        assert secret not in log
    # The migration report: who still calls which legacy Bedrock model.
    report = json.loads(run_cli("report", "--json", str(tmp_path / "bridge.log")).stdout)
    [caller] = report["callers"]
    assert caller["caller"] == fingerprint(b"AKIDAPP")  # the app's access key id
    assert sorted(caller["models"]) == ["anthropic.claude-instant-v1", "anthropic.claude-v2:1"]
