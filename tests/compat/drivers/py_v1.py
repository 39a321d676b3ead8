"""Drive anthropic 0.2.x's legacy calls against a base URL and print what the SDK returned.

Usage: python py_v1.py <base url> '{"stream": bool, "params": {...}, "question": str?}'
A "question" becomes the prompt, built with the SDK's own HUMAN_PROMPT and AI_PROMPT.
Prints {"result": <completion dict>|null, "events": [<stream dicts>], "error": null|{...}}.
"""

import json
import sys
from typing import Any

import anthropic


def main() -> None:
    base_url, scenario = sys.argv[1], json.loads(sys.argv[2])
    params = scenario["params"]
    if "question" in scenario:
        params["prompt"] = f"{anthropic.HUMAN_PROMPT} {scenario['question']}{anthropic.AI_PROMPT}"
    client = anthropic.Client("sk-compat", api_url=base_url, default_request_timeout=20)
    out: dict[str, Any] = {"result": None, "events": [], "error": None}
    try:
        if scenario["stream"]:
            for data in client.completion_stream(**params):
                out["events"].append(data)
        else:
            out["result"] = client.completion(**params)
    except anthropic.ApiException as e:
        out["error"] = {"class": type(e).__name__, "args": list(e.args)}
    print(json.dumps(out, default=str))


main()
