// Drive a Stainless-generated @anthropic-ai/sdk's completions.create and print the result.
//
// Usage: node ts_v2.cjs <base url> '{"stream": bool, "params": {...}, "question": str?}'
// (NODE_PATH finds the SDK). A "question" becomes the prompt, built with the SDK's own
// HUMAN_PROMPT and AI_PROMPT.
// Prints {"result": {...}|null, "events": [{...}], "error": null|{...}}.
const { AI_PROMPT, Anthropic, HUMAN_PROMPT } = require("@anthropic-ai/sdk");

async function main() {
  const [baseURL, raw] = process.argv.slice(2);
  const scenario = JSON.parse(raw);
  const params = scenario.params;
  if (scenario.question !== undefined) {
    params.prompt = `${HUMAN_PROMPT} ${scenario.question}${AI_PROMPT}`;
  }
  const client = new Anthropic({ baseURL, apiKey: "sk-compat", timeout: 20000 });
  const out = { result: null, events: [], error: null, human_prompt: HUMAN_PROMPT };
  try {
    if (scenario.stream) {
      const stream = await client.completions.create({ ...params, stream: true });
      for await (const event of stream) out.events.push(event);
    } else {
      out.result = await client.completions.create(params);
    }
  } catch (e) {
    out.error = { class: e.constructor.name, status: e.status ?? null, body: e.error ?? null };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main();
