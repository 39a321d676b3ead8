// Drive @anthropic-ai/sdk 0.2-0.4's Client.complete / completeStream and print the result.
//
// Usage: node ts_v1.cjs <base url> '{"stream": bool, "params": {...}, "question": str?}'
// (NODE_PATH finds the SDK). A "question" becomes the prompt, built with the SDK's own
// HUMAN_PROMPT and AI_PROMPT.
// Prints {"result": <resolved value>|null, "events": [<onUpdate values>], "error": null|{...}}.
const { AI_PROMPT, Client, HUMAN_PROMPT } = require("@anthropic-ai/sdk");

async function main() {
  const [baseUrl, raw] = process.argv.slice(2);
  const scenario = JSON.parse(raw);
  const params = scenario.params;
  if (scenario.question !== undefined) {
    params.prompt = `${HUMAN_PROMPT} ${scenario.question}${AI_PROMPT}`;
  }
  const client = new Client("sk-compat", { apiUrl: baseUrl });
  const out = { result: null, events: [], error: null };
  try {
    if (scenario.stream) {
      const onUpdate = (completion) => out.events.push(completion);
      out.result = await client.completeStream(params, { onUpdate });
    } else {
      out.result = await client.complete(params);
    }
  } catch (e) {
    out.error = { class: e.name, message: e.message };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0); // fetch-event-source may hold a reconnect timer; we are done
}

main();
