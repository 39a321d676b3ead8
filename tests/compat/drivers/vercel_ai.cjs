// Drive Vercel's `ai` 2.2 the way a Next.js route handler of 2023 did: a plain `fetch` to
// /v1/complete with stream: true, its response through `AnthropicStream`, then read
// either directly or as the body of a `StreamingTextResponse`.
//
// Usage: node vercel_ai.cjs <base url> '{"version": str|null, "read": "stream"|"response",
//   "params": {...}, "messages": [{"role", "content"}]?}' (NODE_PATH finds `ai`).
// "messages" become the prompt through `ai/prompts`' experimental_buildAnthropicPrompt.
// Prints {"status": int, "chunks": [str], "text": str, "error": null|str}.
const { AnthropicStream, StreamingTextResponse } = require("ai");
const { experimental_buildAnthropicPrompt } = require("ai/prompts");

async function main() {
  const [baseUrl, raw] = process.argv.slice(2);
  const scenario = JSON.parse(raw);
  const params = { ...scenario.params, stream: true };
  if (scenario.messages !== undefined) {
    params.prompt = experimental_buildAnthropicPrompt(scenario.messages);
  }
  const headers = { "content-type": "application/json", "x-api-key": "sk-compat" };
  if (scenario.version) headers["anthropic-version"] = scenario.version;
  const out = { status: null, chunks: [], text: "", error: null };
  try {
    const response = await fetch(`${baseUrl}/v1/complete`, {
      method: "POST",
      headers,
      body: JSON.stringify(params),
    });
    out.status = response.status;
    const stream = AnthropicStream(response);
    if (scenario.read === "response") {
      out.text = await new StreamingTextResponse(stream).text();
      out.chunks = [out.text];
    } else {
      const decoder = new TextDecoder();
      for await (const chunk of stream) out.chunks.push(decoder.decode(chunk));
      out.text = out.chunks.join("");
    }
  } catch (e) {
    out.error = String(e && e.message);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main();
