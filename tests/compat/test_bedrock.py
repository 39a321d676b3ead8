"""AnthropicBedrock's `completions.create`, unmodified (the anthropic SDK 0.125.0 and the
2023 anthropic-bedrock package, 0.3.1 and 0.8.0), and LangChain 0.0.x's Bedrock LLM,
pointed at a real bridge process: signed with SigV4 (which a shared bridge verifies
against its `bedrock_access_keys`) or with a bearer key (`api_key`, checked against
`client_keys`), plain and streaming, translated to the fake Messages upstream with the
bridge's own key."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.answers import Received

from .conftest import DRIVER_TIMEOUT, _environ, run_driver, serving_bridge
from .envs import BEDROCK_SDKS, LANGCHAIN_BEDROCK, Sdk, ensure

pytestmark = pytest.mark.compat

SIGNED = {"aws_access_key": "AKIDCOMPAT", "aws_secret_key": "compat-secret"}
SECRETS = {
    "COMPAT_UPSTREAM_KEY": "sk-bridge",
    "COMPAT_CLIENT_KEYS": "bridge-key",
    "COMPAT_AWS_KEYS": "AKIDCOMPAT compat-secret",
}
PARAMS = {
    "model": "anthropic.claude-v2",
    "prompt": "\n\nHuman: Hello there\n\nAssistant:",
    "max_tokens_to_sample": 50,
}
ANSWER = {"completion": " echo: Hello there", "stop_reason": "stop_sequence", "stop": "\n\nHuman:"}


@pytest.fixture(scope="module")
def shared_bridge(
    fake_upstream: tuple[str, list[Received]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A shared bridge: its own upstream key, client keys and AWS access keys."""
    env = {**_environ("BRIDGE_"), **SECRETS}
    env |= {
        "BRIDGE_UPSTREAM_KEY": "env:COMPAT_UPSTREAM_KEY",
        "BRIDGE_CLIENT_KEYS": "env:COMPAT_CLIENT_KEYS",
        "BRIDGE_BEDROCK_ACCESS_KEYS": "env:COMPAT_AWS_KEYS",
    }
    log_path: Path = tmp_path_factory.mktemp("bedrock") / "bridge.log"
    with serving_bridge(fake_upstream[0], log_path, env) as url:
        yield url
    assert "compat-secret" not in log_path.read_text()  # never a secret in the log
    assert "bridge-key" not in log_path.read_text()


@pytest.fixture(params=list(BEDROCK_SDKS))
def sdk(request: pytest.FixtureRequest) -> Sdk:
    return ensure(BEDROCK_SDKS[request.param])


def test_signed_call_is_answered(shared_bridge: str, sdk: Sdk, received: list[Received]) -> None:
    got = run_driver(shared_bridge, sdk, stream=False, params=PARAMS, auth=SIGNED)
    assert got["error"] is None and got["result"] == ANSWER
    [request] = received
    assert request.headers["x-api-key"] == "sk-bridge"
    assert "authorization" not in request.headers and "x-amz-date" not in request.headers


def test_signed_stream_is_answered(shared_bridge: str, sdk: Sdk) -> None:
    got = run_driver(shared_bridge, sdk, stream=True, params=PARAMS, auth=SIGNED)
    assert got["error"] is None
    events = got["events"]
    assert "".join(e["completion"] for e in events) == ANSWER["completion"]
    assert (events[-1]["stop_reason"], events[-1]["stop"]) == ("stop_sequence", "\n\nHuman:")


def test_wrong_secret_is_refused(shared_bridge: str, sdk: Sdk, received: list[Received]) -> None:
    auth = {**SIGNED, "aws_secret_key": "not-the-secret"}
    got = run_driver(shared_bridge, sdk, stream=False, params=PARAMS, auth=auth)
    assert got["error"]["status"] == 403
    assert not received


def test_bad_request_is_a_400(shared_bridge: str, sdk: Sdk) -> None:
    params = {**PARAMS, "prompt": "no turns"}
    got = run_driver(shared_bridge, sdk, stream=False, params=params, auth=SIGNED)
    assert (got["error"]["class"], got["error"]["status"]) == ("BadRequestError", 400)
    assert "Human" in json.dumps(got["error"]["body"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_bearer_key_is_answered(shared_bridge: str, stream: bool) -> None:
    sdk = ensure(BEDROCK_SDKS["py-bedrock-0.125.0"])  # api_key is the SDK's, since 0.6x
    got = run_driver(
        shared_bridge, sdk, stream=stream, params=PARAMS, auth={"api_key": "bridge-key"}
    )
    assert got["error"] is None
    text = (
        got["result"]["completion"]
        if not stream
        else "".join(e["completion"] for e in got["events"])
    )
    assert text == ANSWER["completion"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_langchain_bedrock_llm(
    shared_bridge: str, stream: bool, received: list[Received], tmp_path: Path
) -> None:
    """LangChain 0.0.x's `Bedrock` LLM, its boto3 client signing with the app's keys."""
    sdk = ensure(LANGCHAIN_BEDROCK)
    done = subprocess.run(
        [*sdk.command(), shared_bridge, json.dumps({"stream": stream, "question": "Hello there"})],
        env={
            **_environ("AWS_"),
            "AWS_ACCESS_KEY_ID": SIGNED["aws_access_key"],
            "AWS_SECRET_ACCESS_KEY": SIGNED["aws_secret_key"],
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        },
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["error"] is None
    text = "".join(got["events"]) if stream else got["result"]
    assert text == ANSWER["completion"]
    [request] = received
    assert request.body["messages"][-1]["content"] == "Hello there"
