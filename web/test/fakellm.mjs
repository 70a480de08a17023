// A scripted language model behind an OpenAI-compatible Chat Completions
// API, for the assistant's browser test: it streams like the real one
// (text/event-stream of chat.completion.chunk objects, tool calls in
// pieces, then [DONE]) and plays one conversation: look at the app with
// get_app, propose a /health route with update_app, then say so; asked
// again in the same conversation, it answers from what it said before.
import { createServer } from "node:http";

export const KEY = "sk-test";
export const HEALTH = '\n\n@app.get("/health")\ndef health():\n    return {"ok": True}\n';
const TOOLS = ["list_apps", "get_app", "get_app_logs", "list_databases", "validate_code", "create_app", "update_app", "delete_app"];

/**
 * startFakeLLM listens on a free loopback port. requests records each
 * call: { path, authorization, body, problems } (problems: what was wrong
 * with the request, empty when it was as a real client sends it).
 */
export async function startFakeLLM() {
  const requests = [];
  const server = createServer(async (req, res) => {
    let raw = "";
    for await (const c of req) raw += c;
    const rec = { method: req.method, path: new URL(req.url, "http://x").pathname, authorization: req.headers.authorization ?? "", body: null, problems: [] };
    requests.push(rec);
    const fail = (status, msg, type = "invalid_request_error") => {
      rec.problems.push(msg);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: msg, type, param: null, code: null } }));
    };
    if (req.method !== "POST" || rec.path !== "/v1/chat/completions") return fail(404, `no route ${req.method} ${rec.path}`);
    if (rec.authorization !== `Bearer ${KEY}`) return fail(401, "Incorrect API key provided.", "authentication_error");
    try {
      rec.body = JSON.parse(raw);
    } catch {
      return fail(400, "the body is not JSON");
    }
    const b = rec.body;
    if (b.stream !== true) rec.problems.push("stream is not true");
    if (!Array.isArray(b.messages)) return fail(400, "messages is missing");
    const tools = (b.tools ?? []).map((t) => t.type === "function" && t.function?.name);
    for (const t of TOOLS) if (!tools.includes(t)) rec.problems.push(`tool ${t} is missing`);
    let script;
    try {
      script = play(b.messages);
    } catch (err) {
      return fail(400, err.message);
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const id = `chatcmpl-${requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    const send = (obj) => res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: b.model, ...obj })}\n\n`);
    send({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] });
    for (const delta of script.deltas) {
      send({ choices: [{ index: 0, delta, finish_reason: null }] });
      await new Promise((r) => setTimeout(r, 15));
    }
    send({ choices: [{ index: 0, delta: {}, finish_reason: script.finish }] });
    if (b.stream_options?.include_usage) send({ choices: [], usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } });
    res.end("data: [DONE]\n\n");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** play returns the model's next turn: the deltas to stream and why it stops. */
function play(messages) {
  const last = messages[messages.length - 1];
  if (!messages.some((m) => m.role === "tool")) {
    if (!messages.some((m) => m.role === "system")) throw new Error("no system message");
    if (last?.role !== "user") throw new Error("the conversation does not end with the user");
    // A conversation gone on with: the earlier reply is there, in words.
    const before = messages.slice(0, -1).find((m) => m.role === "assistant");
    if (before) {
      if (!JSON.stringify(before.content ?? "").includes("I proposed adding a /health route.")) throw new Error("the earlier reply is not the one this model gave");
      return { deltas: [{ content: "You asked me for a /health route, " }, { content: "and I proposed one." }], finish: "stop" };
    }
    return {
      deltas: [
        { content: "Let me " }, { content: "look at " }, { content: "the app." },
        ...toolCall(0, "call_1", "get_app", JSON.stringify({ name: "notes" })),
      ],
      finish: "tool_calls",
    };
  }
  if (last.role !== "tool") throw new Error(`the last message is ${last.role}, not a tool result`);
  const call = messages.findLast((m) => m.role === "assistant" && m.tool_calls?.some((c) => c.id === last.tool_call_id));
  if (!call) throw new Error(`no assistant message made the tool call ${last.tool_call_id}`);
  if (last.tool_call_id === "call_1") {
    const content = appPy(textOf(last.content));
    return {
      deltas: toolCall(0, "call_2", "update_app", JSON.stringify({
        name: "notes", summary: "Add a /health route", files: [{ name: "app.py", content: content + HEALTH }],
      })),
      finish: "tool_calls",
    };
  }
  if (last.tool_call_id === "call_2") {
    return { deltas: [{ content: "I proposed adding " }, { content: "a /health route." }], finish: "stop" };
  }
  throw new Error(`unexpected tool call id ${last.tool_call_id}`);
}

/** toolCall streams a function call the standard way: id and name first, the arguments in pieces. */
function toolCall(index, id, name, args) {
  const half = Math.floor(args.length / 2);
  return [
    { tool_calls: [{ index, id, type: "function", function: { name, arguments: "" } }] },
    { tool_calls: [{ index, function: { arguments: args.slice(0, half) } }] },
    { tool_calls: [{ index, function: { arguments: args.slice(half) } }] },
  ];
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? "").join("");
  throw new Error("a tool message without content");
}

/** appPy finds app.py's content in get_app's result, wherever its files are. */
function appPy(result) {
  let data;
  try {
    data = JSON.parse(result);
  } catch {
    throw new Error(`get_app's result is not JSON: ${result.slice(0, 200)}`);
  }
  const seen = [];
  const find = (v) => {
    if (Array.isArray(v)) {
      const f = v.find((x) => x && x.name === "app.py" && typeof x.content === "string");
      if (f) return f.content;
    }
    if (v && typeof v === "object") {
      seen.push(...Object.keys(v));
      for (const x of Object.values(v)) {
        const c = find(x);
        if (c !== undefined) return c;
      }
    }
    return undefined;
  };
  const c = find(data);
  if (c === undefined) throw new Error(`get_app's result has no app.py with its content (keys: ${[...new Set(seen)].join(", ")})`);
  return c;
}
