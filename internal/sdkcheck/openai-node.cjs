// The official OpenAI Node SDK against a running platform: run by
// internal/sdkcheck for services/e2e TestOpenAINodeSDK (the test stack) and
// internal/localrun's test (bulkhead up), and by `make sdk-check` (the
// platform of `make run`). Each check prints "ok NAME" or
// "FAIL NAME: why"; the exit status is the number of failures.
//
// Environment: BULKHEAD_API (http://host:port), BULKHEAD_KEY, NODE_SDK_DIR
// (tools/node-sdk, where the pinned SDK is installed), and TOOL_MODEL, a
// model served by an upstream that calls tools (unset: the checks that
// need it print "skip"; the tests always set it).
"use strict";
const { createRequire } = require("node:module");
const path = require("node:path");

const fs = require("node:fs");

const sdk = createRequire(path.join(process.env.NODE_SDK_DIR, "package.json"));
const OpenAI = sdk("openai");
const version = JSON.parse(fs.readFileSync(path.join(process.env.NODE_SDK_DIR, "node_modules", "openai", "package.json"))).version;

const api = process.env.BULKHEAD_API;
const apiKey = process.env.BULKHEAD_KEY;
const toolModel = process.env.TOOL_MODEL;
const client = new OpenAI({ apiKey, baseURL: api + "/v1", maxRetries: 0 });
const beta = new OpenAI({ apiKey, baseURL: api + "/beta", maxRetries: 0 });

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ask = [{ role: "user", content: "What is the weather in Paris?" }];

function expect(cond, why) {
  if (!cond) throw new Error(why);
}

class Skip extends Error {}
function needToolModel() {
  if (!toolModel) throw new Skip("TOOL_MODEL is not set (a model whose upstream calls tools)");
}

const checks = {
  async "tools round trip"() {
    needToolModel();
    const first = await client.chat.completions.create({ model: toolModel, messages: ask, tools: [weather] });
    const msg = first.choices[0].message;
    expect(first.choices[0].finish_reason === "tool_calls", `finish_reason ${first.choices[0].finish_reason}`);
    const call = msg.tool_calls && msg.tool_calls[0];
    expect(call && call.function.name === "get_weather", `tool_calls ${JSON.stringify(msg.tool_calls)}`);
    const args = JSON.parse(call.function.arguments);
    expect(args.city === "Paris", `arguments ${call.function.arguments}`);
    const second = await client.chat.completions.create({
      model: toolModel,
      tools: [weather],
      messages: [...ask, msg, { role: "tool", tool_call_id: call.id, content: "18 degrees" }],
    });
    expect(second.choices[0].message.content === "The tool says: 18 degrees", `answer ${JSON.stringify(second.choices[0].message)}`);
  },

  async "streamed tool_call deltas, assembled by the SDK"() {
    needToolModel();
    const stream = client.chat.completions.stream({
      model: toolModel,
      messages: ask,
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    let deltas = 0;
    stream.on("chunk", (c) => {
      if (c.choices[0] && c.choices[0].delta.tool_calls) deltas++;
    });
    const done = await stream.finalChatCompletion();
    const call = done.choices[0].message.tool_calls[0];
    expect(deltas >= 3, `${deltas} tool_call deltas: the arguments came in one piece`);
    expect(call.function.name === "get_weather" && JSON.parse(call.function.arguments).city === "Paris", `assembled ${JSON.stringify(call)}`);
    expect(done.choices[0].finish_reason === "tool_calls", `finish_reason ${done.choices[0].finish_reason}`);
  },

  async "the builtin engine refuses tools with a 422"() {
    try {
      await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools: [weather] });
    } catch (e) {
      expect(e instanceof OpenAI.APIError && e.status === 422 && e.param === "tools", `error ${e.status} ${e.param}: ${e.message}`);
      return;
    }
    throw new Error("no error");
  },

  async logprobs() {
    const r = await client.chat.completions.create({
      model: "deepseek-chat", messages: ask, max_tokens: 20, temperature: 0, logprobs: true, top_logprobs: 2,
    });
    const lps = r.choices[0].logprobs.content;
    expect(lps.length > 5, `${lps.length} log-probabilities`);
    expect(lps.map((l) => l.token).join("") === r.choices[0].message.content, "the tokens do not spell the content");
    expect(lps.every((l) => l.logprob <= 0 && l.top_logprobs.length <= 2), "a log-probability above 0, or too many alternatives");
  },

  async "json_object parsed"() {
    const r = await client.chat.completions.create({
      model: "deepseek-chat", messages: [{ role: "user", content: "Answer in JSON: what is light?" }],
      response_format: { type: "json_object" }, max_tokens: 40,
    });
    const obj = JSON.parse(r.choices[0].message.content);
    expect(typeof obj === "object" && obj !== null && !Array.isArray(obj), `not an object: ${r.choices[0].message.content}`);
  },

  async "/user/balance"() {
    const b = await client.get("/user/balance");
    const info = b.balance_infos && b.balance_infos[0];
    expect(b.is_available === true && info && typeof info.total_balance === "string" && info.currency === "USD", JSON.stringify(b));
  },

  async "FIM on /beta"() {
    const r = await beta.completions.create({ model: "deepseek-chat", prompt: "The Rays of Light", suffix: " in the Prism.", max_tokens: 30 });
    expect(r.object === "text_completion" && r.choices[0].text.length > 0, JSON.stringify(r));
  },

  async "thinking deltas"() {
    const stream = await client.chat.completions.create({ model: "deepseek-v4-flash", messages: ask, max_tokens: 200, stream: true });
    let reasoning = "";
    let content = "";
    for await (const c of stream) {
      const d = c.choices[0] ? c.choices[0].delta : {};
      reasoning += d.reasoning_content || "";
      content += d.content || "";
      expect(!(content && d.reasoning_content), "reasoning_content after the answer began");
    }
    expect(reasoning.length > 0, "no reasoning_content deltas");
  },
};

(async () => {
  let failed = 0;
  for (const [name, check] of Object.entries(checks)) {
    try {
      await check();
      console.log(`ok ${name}`);
    } catch (e) {
      if (e instanceof Skip) {
        console.log(`skip ${name}: ${e.message}`);
        continue;
      }
      failed++;
      console.log(`FAIL ${name}: ${e.message}`);
    }
  }
  console.log(`openai ${version} on node ${process.version}: ${failed} failed`);
  process.exit(failed);
})();
