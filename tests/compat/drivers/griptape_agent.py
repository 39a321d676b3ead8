"""Drive griptape 0.23's AnthropicPromptDriver through an Agent, as an app did, and print
what the agent answered.

Usage: python griptape_agent.py <base url> '{"question": str, "model": str, "stream": bool}'
The only change from an app is the Anthropic client's base URL.
Prints {"output": str|null, "error": null|{"class", "message"}, "prompt": str}.
"""

import json
import os
import sys
from typing import Any

# An Agent builds default OpenAI drivers (task memory) it never calls without tools, and
# their client wants a key at construction, as apps of the time found out.
os.environ.setdefault("OPENAI_API_KEY", "unused")

from anthropic import Anthropic
from griptape.drivers import AnthropicPromptDriver
from griptape.structures import Agent


def main() -> None:
    base_url, raw = sys.argv[1:3]
    scenario = json.loads(raw)
    client = Anthropic(api_key="sk-compat", base_url=base_url, max_retries=0)
    driver = AnthropicPromptDriver(
        api_key="sk-compat", model=scenario["model"], client=client, stream=scenario["stream"]
    )
    out: dict[str, Any] = {"output": None, "error": None, "prompt": None}
    create = client.completions.create

    # The test's eyes on the prompt griptape wrote; passed on as is.
    def recorded(**params: Any) -> Any:
        out["prompt"] = params["prompt"]
        return create(**params)

    client.completions.create = recorded
    try:
        agent = Agent(prompt_driver=driver)
        agent.run(scenario["question"])
        out["output"] = agent.output_task.output.value
    except Exception as exc:  # the app's view of a failure
        out["error"] = {"class": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
