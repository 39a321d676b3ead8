"""Drive LangChain 0.0.x's `Bedrock` LLM (over boto3) against an endpoint URL and print
what it returned.

Usage: python langchain_bedrock.py <endpoint url> '{"stream": bool, "question": str}'
Its AWS credentials come from the environment. Prints {"result": str|null,
"events": [str], "error": null|{"class": str, "message": str}}.
"""

import json
import sys
from typing import Any

from langchain.llms import Bedrock


def main() -> None:
    endpoint_url, scenario = sys.argv[1], json.loads(sys.argv[2])
    llm = Bedrock(
        model_id="anthropic.claude-v2",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        model_kwargs={"max_tokens_to_sample": 50},
        streaming=scenario["stream"],
    )
    out: dict[str, Any] = {"result": None, "events": [], "error": None}
    try:
        if scenario["stream"]:
            out["events"] = list(llm.stream(scenario["question"]))
        else:
            out["result"] = llm.invoke(scenario["question"])
    except Exception as e:  # what the app would see
        out["error"] = {"class": type(e).__name__, "message": str(e)}
    print(json.dumps(out))


main()
