"""Who may make a Bedrock call (docs/bedrock.md, Who may call).

    sidecar          no `client_keys`, no `bedrock_access_keys`: every call passes, its
                     SigV4 signature (if any) taken as it comes
    bearer key       `client_keys`: `Authorization: Bearer <key>`, as
                     `AnthropicBedrock(api_key=...)` sends it, checked like any key
    SigV4            `bedrock_access_keys`: the signature recomputed with botocore's
                     signer from the configured secret of the call's access key id, and
                     compared; its date within 15 minutes of the bridge's clock

The signature is only checked here: what goes upstream never carries it (the endpoint
drops the caller's credentials; proxy/edge/bedrock.py). No key, secret or session token
is ever logged or answered back.
"""

import datetime
import hmac
import re

from starlette.datastructures import Headers
from starlette.types import Scope

from proxy.config.access import Access
from proxy.errors import BridgeError

SIGV4 = "AWS4-HMAC-SHA256"
SKEW = datetime.timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)"
    r"/(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;._-]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class Denied(BridgeError):
    """A Bedrock caller the bridge does not admit (Bedrock answers 403)."""

    status = 403
    error_type = "permission_error"


def is_sigv4(headers: Headers) -> bool:
    return headers.get("authorization", "").startswith(SIGV4)


def access_key_id(headers: Headers) -> bytes | None:
    """A SigV4 call's access key id (an identifier, not a secret)."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    return None if match is None else match["key"].encode()


def admit(access: Access, headers: Headers) -> None:
    """What can be checked before the body: who is calling, and how."""
    if not (access.restricted or access.verifies_aws):
        return  # a sidecar: the app's own signature (or none) as it comes
    if is_sigv4(headers):
        if not access.verifies_aws:
            raise Denied("this bridge takes a bearer key, not an AWS signature")
        match = _AUTHORIZATION.match(headers["authorization"])
        if match is None or access.aws_secret(match["key"]) is None:
            raise Denied("the security token included in the request is invalid")
        return
    if not access.restricted or not access.admits(headers.raw):
        raise Denied("this bridge takes an AWS signature or a bearer key it knows")


def verify(access: Access, scope: Scope, headers: Headers, body: bytes | bytearray) -> None:
    """A SigV4 call's signature, recomputed over the request as it came (with its body)."""
    if not access.verifies_aws or not is_sigv4(headers):
        return
    match = _AUTHORIZATION.match(headers["authorization"])
    assert match is not None  # admit checked it
    secret = access.aws_secret(match["key"])
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise Denied("the request has no valid X-Amz-Date") from None
    if abs(datetime.datetime.now(datetime.UTC) - when) > SKEW or stamp[:8] != match["date"]:
        raise Denied("the request signature is too old or from the future")
    signed = match["signed"].split(";")
    if "host" not in signed:
        raise Denied("the request signature does not cover the host header")
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    from botocore.auth import SigV4Auth  # botocore (8 MB) loads only when a call needs it
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method=scope["method"],
        url=f"http://{headers.get('host', '')}{path}" + (f"?{query}" if query else ""),
        headers={name: headers.get(name, "") for name in signed},
        data=bytes(body),
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise Denied("the request signature does not match the one computed for it")
