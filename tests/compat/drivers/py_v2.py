"""Drive a Stainless-generated anthropic SDK's `completions.create` and print the result.

Usage: python py_v2.py <base url> '{"stream": bool, "params": {...}, "question": str?}'
A "question" becomes the prompt, built with the SDK's own HUMAN_PROMPT and AI_PROMPT.
Prints {"result": {...}|null, "events": [{...}], "error": null|{...}} where each completion
is reduced to the fields the legacy API defines, plus the response's request-id.
"""

import json
import sys
from typing import Any

import anthropic

FIELDS = ("type", "id", "completion", "stop_reason", "stop", "model")


def fields(completion: object) -> dict[str, Any]:
    return {name: getattr(completion, name, None) for name in FIELDS}


def main() -> None:
    base_url, scenario = sys.argv[1], json.loads(sys.argv[2])
    params = scenario["params"]
    if "question" in scenario:
        params["prompt"] = f"{anthropic.HUMAN_PROMPT} {scenario['question']}{anthropic.AI_PROMPT}"
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-compat", timeout=20)
    out: dict[str, Any] = {"result": None, "events": [], "error": None}
    try:
        if scenario["stream"]:
            for event in client.completions.create(**params, stream=True):
                out["events"].append(fields(event))
        else:
            out["result"] = fields(client.completions.create(**params))
    except anthropic.APIError as e:
        out["error"] = {
            "class": type(e).__name__,
            "status": getattr(e, "status_code", None),
            "body": e.body,
        }
    print(json.dumps(out))


main()
