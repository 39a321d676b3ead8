"""Drive an AnthropicBedrock client's `completions.create` (the anthropic SDK's, or the
2023 anthropic-bedrock package's) against a base URL and print what it returned.

Usage: python py_bedrock.py <base url> '{"stream": bool, "params": {...}, "auth": {...}}'
`auth` is the client's credentials: aws_access_key and aws_secret_key (SigV4), or
api_key (a bearer key; the SDK only). Prints {"result": {...}|null, "events": [{...}],
"error": null|{...}} with each completion reduced to the fields Bedrock's legacy API has.
"""

import json
import sys
from typing import Any

try:
    from anthropic import AnthropicBedrock, APIError
except ImportError:  # the 2023 package
    from anthropic_bedrock import AnthropicBedrock, APIError

FIELDS = ("completion", "stop_reason", "stop")


def fields(completion: object) -> dict[str, Any]:
    return {name: getattr(completion, name, None) for name in FIELDS}


def main() -> None:
    base_url, scenario = sys.argv[1], json.loads(sys.argv[2])
    client = AnthropicBedrock(
        base_url=base_url, aws_region="us-east-1", timeout=20, max_retries=0, **scenario["auth"]
    )
    params = scenario["params"]
    out: dict[str, Any] = {"result": None, "events": [], "error": None}
    try:
        if scenario["stream"]:
            for event in client.completions.create(**params, stream=True):
                out["events"].append(fields(event))
        else:
            out["result"] = fields(client.completions.create(**params))
    except APIError as e:
        out["error"] = {
            "class": type(e).__name__,
            "status": getattr(e, "status_code", None),
            "body": getattr(e, "body", None) or str(e),  # 0.3.x errors have no body
        }
    print(json.dumps(out))


main()
