"""A fake Bedrock Runtime serving Claude's Messages form, as an ASGI app: it verifies each
request's SigV4 signature (botocore's signer recomputed with the one key it knows),
refuses what Bedrock refuses (no or a bad signature, an unknown model id, no or another
anthropic_version, a field Bedrock does not take) with Bedrock's statuses and
`x-amzn-errortype`, and otherwise answers what the fake Messages API answers
(tests/fakes/answers.py, scripted by the prompt the same way), in Bedrock's shapes: the
message JSON, or an event stream of `chunk` events, a stream's error as an exception."""

import base64
import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.types import Receive, Scope, Send

from proxy.translate import eventstream
from tests.fakes.answers import Received, respond
from tests.fakes.servers import request_body

MODELS = {  # Bedrock model ids and inference profiles -> the fake Messages API's name
    "anthropic.claude-sonnet-4-5-20250929-v1:0": "claude-sonnet-4-5",
    "anthropic.claude-haiku-4-5-20251001-v1:0": "claude-haiku-4-5",
    "us.anthropic.claude-haiku-4-5-20251001-v1:0": "claude-haiku-4-5",
}
ALLOWED = frozenset({"anthropic_version", "anthropic_beta", "messages", "system", "max_tokens"})
ALLOWED_ALSO = frozenset({"stop_sequences", "temperature", "top_k", "top_p", "tools"})
PATH = re.compile(r"/model/(?P<model>[^/]+)/(?P<operation>invoke|invoke-with-response-stream)")
CREDENTIAL = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>\w+)"
)
EXCEPTIONS = {
    400: "ValidationException",
    401: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    529: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}
STATUSES = {"ServiceUnavailableException": 503, "ModelTimeoutException": 408}


class Refused(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


@dataclass
class FakeBedrock:
    """Bedrock Runtime in `region`, knowing one access key (and session token)."""

    access_key: str
    secret_key: str
    token: str | None = None
    region: str = "us-east-1"
    requests: list[Received] = field(default_factory=list)  # those it accepted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await request_body(receive)
        headers = {n.decode().lower(): v.decode() for n, v in scope["headers"]}
        try:
            status, out_headers, parts = self._answer(scope, headers, raw)
        except Refused as exc:
            status, out_headers = exc.status, {"x-amzn-errortype": f"{exc.name}:http://fake/"}
            parts = [json.dumps({"message": exc.message}).encode()]
        out_headers |= {"x-amzn-requestid": f"fake-{len(self.requests)}"}
        encoded = [(n.encode(), v.encode()) for n, v in out_headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": encoded})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _answer(
        self, scope: Scope, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], list[bytes]]:
        self._verify(scope, headers, raw)
        match = PATH.fullmatch(unquote(scope["path"]))
        if scope["method"] != "POST" or match is None:
            raise Refused(404, "UnknownOperationException", "no such operation")
        model = MODELS.get(match["model"])
        if model is None:
            raise Refused(400, "ValidationException", "The provided model identifier is invalid.")
        body = json.loads(raw)
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            raise Refused(400, "ValidationException", "invalid anthropic_version")
        for key in body:
            if key not in ALLOWED | ALLOWED_ALSO:
                raise Refused(
                    400, "ValidationException", f"extraneous key [{key}] is not permitted"
                )
        stream = match["operation"] == "invoke-with-response-stream"
        messages = {k: v for k, v in body.items() if k != "anthropic_version"}
        messages |= {"model": model, **({"stream": True} if stream else {})}
        asked = {"x-api-key": "bedrock", "anthropic-version": "2023-06-01"}
        request = Received("POST", "/v1/messages", {**headers, **asked}, messages)
        self.requests.append(Received("POST", scope["path"], headers, body))
        answer = respond(request, len(self.requests))
        if answer.status != 200:
            error = json.loads(b"".join(answer.parts))["error"]
            name = EXCEPTIONS.get(answer.status, "InternalServerException")
            raise Refused(STATUSES.get(name, answer.status), name, error["message"])
        if not stream:
            return 200, {"content-type": "application/json"}, answer.parts
        kind = {"content-type": "application/vnd.amazon.eventstream"}
        return 200, kind, [_chunk(part) for part in answer.parts]

    def _verify(self, scope: Scope, headers: dict[str, str], raw: bytes) -> None:
        match = CREDENTIAL.fullmatch(headers.get("authorization", ""))
        if match is None:
            raise Refused(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        if match["key"] != self.access_key or headers.get("x-amz-security-token") != self.token:
            raise Refused(403, "UnrecognizedClientException", "The security token is invalid.")
        if (match["region"], match["service"]) != (self.region, "bedrock"):
            raise Refused(403, "InvalidSignatureException", "Credential should be scoped right")
        stamp = headers["x-amz-date"]
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        if abs(datetime.datetime.now(datetime.UTC) - when) > datetime.timedelta(minutes=5):
            raise Refused(403, "InvalidSignatureException", "Signature expired")
        path = scope["raw_path"].decode()
        request = AWSRequest(
            method=scope["method"],
            url=f"http://{headers['host']}{path}",
            headers={name: headers[name] for name in match["signed"].split(";")},
            data=raw,
        )
        request.context["timestamp"] = stamp
        credentials = Credentials(self.access_key, self.secret_key, self.token)
        signer = SigV4Auth(credentials, "bedrock", self.region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if expected != match["sig"]:
            raise Refused(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match",
            )


def _chunk(sse: bytes) -> bytes:
    """One Messages stream event as Bedrock streams it; an error as an exception event."""
    data: dict[str, Any] = json.loads(sse.split(b"data: ", 1)[1])
    if data["type"] == "error":
        overloaded = data["error"]["type"] == "overloaded_error"
        member = "serviceUnavailableException" if overloaded else "modelStreamErrorException"
        return eventstream.exception(
            member, json.dumps({"message": data["error"]["message"]}).encode()
        )
    payload = {"bytes": base64.b64encode(json.dumps(data).encode()).decode()}
    return eventstream.event("chunk", json.dumps(payload).encode())
