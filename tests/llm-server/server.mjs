#!/usr/bin/env node
// A real small language model behind an OpenAI-compatible HTTP API, for
// Caxton's tests: node built-ins + node-llama-cpp (llama.cpp's prebuilt
// linux-x64 CPU binary from the @node-llama-cpp/linux-x64 package; nothing
// is downloaded or built at run time).
//
//   node tests/llm-server/server.mjs --model PATH [--port N] [--host 127.0.0.1]
//        [--name ID] [--context-size 2048] [--threads 2]
//
// --port 0 (the default) picks a free port. When ready it prints exactly one
// line to stdout, `listening on http://HOST:PORT`; everything else goes to
// stderr.
//
// Routes:
//   GET  /v1/models             one model, id = --name or the file's stem
//   GET  /v1/models/{id}
//   POST /v1/chat/completions   messages (system/user/assistant/tool),
//                               max_tokens / max_completion_tokens,
//                               temperature, top_p, seed, stop, stream,
//                               stream_options.include_usage
//   GET  /health
//
// Behaviour worth knowing in tests:
// - temperature 0 or absent means greedy decoding: the same request gives the
//   same answer every time. Above 0 it samples, with `seed` when given.
// - Requests run one at a time (a queue): the model has one context with one
//   sequence. Each request starts from an empty sequence (stateless).
// - With no max_tokens the reply is limited by what is left of the context;
//   a larger max_tokens is clamped to it (finish_reason "length").
// - `tools`, `tool_choice`, `response_format`, penalties, `logit_bias` etc.
//   are accepted and ignored: a 135M model cannot call tools reliably, so
//   the reply is always plain assistant text. Tool results (role "tool") and
//   an assistant's tool_calls are shown to the model as plain text.

import http from "node:http";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { getLlama, LlamaChat, LlamaLogLevel } from "node-llama-cpp";

const { values: args } = parseArgs({
    options: {
        model: { type: "string" },
        port: { type: "string", default: "0" },
        host: { type: "string", default: "127.0.0.1" },
        name: { type: "string" },
        "context-size": { type: "string", default: "2048" },
        threads: { type: "string", default: "2" },
    },
    strict: true,
});

function log(...parts) {
    process.stderr.write(`llm-server: ${parts.join(" ")}\n`);
}

function die(message) {
    log(message);
    process.exit(2);
}

if (!args.model) die("usage: server.mjs --model PATH [--port N] [--host 127.0.0.1] [--name ID]");
const port = Number(args.port);
const contextSize = Number(args["context-size"]);
const threads = Number(args.threads);
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`bad --port ${args.port}`);
if (!Number.isInteger(contextSize) || contextSize < 256) die(`bad --context-size ${args["context-size"]}`);
if (!Number.isInteger(threads) || threads < 1) die(`bad --threads ${args.threads}`);
const modelPath = path.resolve(args.model);
const modelId = args.name ?? path.basename(modelPath).replace(/\.[^.]*$/, "");
const MAX_BODY = 8 << 20;

// ---------------------------------------------------------------- the model

const loadStarted = Date.now();
// gpu: false = CPU only, no CUDA/Vulkan probing; build: "never" = use the
// prebuilt binary or fail, never fetch llama.cpp's source or compile it.
const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => log(`[llama.cpp ${level}]`, message.trimEnd()),
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
    contextSize,
    sequences: 1,
    threads,
    batchSize: 512,
});
const sequence = context.getSequence();
// One LlamaChat over the one sequence; its chat wrapper is resolved from the
// GGUF's metadata (ChatML for SmolLM2).
const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: "auto" });
log(
    `loaded ${modelPath} as ${JSON.stringify(modelId)} in ${Date.now() - loadStarted} ms`,
    `(context ${context.contextSize} tokens, ${threads} threads, chat wrapper ${chat.chatWrapper.wrapperName})`,
);

// ------------------------------------------------------------------ helpers

class RequestError extends Error {
    constructor(status, message, { type = "invalid_request_error", param = null, code = null } = {}) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }
}

function sendJson(res, status, body) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
    });
    res.end(text);
}

function sendError(res, err) {
    sendJson(res, err.status, {
        error: { message: err.message, type: err.type, param: err.param, code: err.code },
    });
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on("data", (chunk) => {
            size += chunk.length;
            if (size > MAX_BODY) {
                reject(new RequestError(413, `request body over ${MAX_BODY} bytes`));
                req.destroy();
                return;
            }
            chunks.push(chunk);
        });
        req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        req.on("error", reject);
    });
}

// Message content: a string, null, or an array of parts ({type: "text"}).
function contentText(content, where) {
    if (content == null) return "";
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
        return content
            .map((part, i) => {
                if (typeof part === "string") return part;
                if (part && part.type === "text" && typeof part.text === "string") return part.text;
                throw new RequestError(400, `${where}.content[${i}]: only text parts are supported`, {
                    param: `${where}.content`,
                });
            })
            .join("");
    }
    throw new RequestError(400, `${where}.content must be a string or an array of parts`, {
        param: `${where}.content`,
    });
}

// OpenAI messages -> node-llama-cpp chat history, ending in an empty model
// response for the model to write.
function toHistory(messages) {
    if (!Array.isArray(messages) || messages.length === 0)
        throw new RequestError(400, "messages must be a non-empty array", { param: "messages" });
    const history = [];
    messages.forEach((m, i) => {
        const where = `messages[${i}]`;
        if (m == null || typeof m !== "object")
            throw new RequestError(400, `${where} must be an object`, { param: "messages" });
        const text = contentText(m.content, where);
        switch (m.role) {
            case "system":
            case "developer":
                history.push({ type: "system", text });
                break;
            case "user":
                history.push({ type: "user", text });
                break;
            case "assistant": {
                let reply = text;
                if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
                    const calls = m.tool_calls
                        .map((c) => `${c?.function?.name ?? "tool"}(${c?.function?.arguments ?? ""})`)
                        .join("\n");
                    reply = reply ? `${reply}\n${calls}` : calls;
                }
                history.push({ type: "model", response: [reply] });
                break;
            }
            case "tool":
            case "function":
                history.push({
                    type: "user",
                    text: `Result of ${m.name ?? m.tool_call_id ?? "a tool call"}: ${text}`,
                });
                break;
            default:
                throw new RequestError(400, `${where}.role ${JSON.stringify(m.role)} is not one of system, user, assistant, tool`, {
                    param: `${where}.role`,
                });
        }
    });
    history.push({ type: "model", response: [] });
    return history;
}

function optionalNumber(body, key, { min = -Infinity, max = Infinity, integer = false } = {}) {
    const v = body[key];
    if (v == null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)))
        throw new RequestError(400, `${key} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}]`, {
            param: key,
        });
    return v;
}

function parseRequest(body) {
    if (body == null || typeof body !== "object" || Array.isArray(body))
        throw new RequestError(400, "the request body must be a JSON object");
    if (body.model != null && typeof body.model !== "string")
        throw new RequestError(400, "model must be a string", { param: "model" });
    const history = toHistory(body.messages);
    const n = optionalNumber(body, "n", { min: 1, max: 1, integer: true });
    void n; // only n = 1 is supported
    const maxTokens =
        optionalNumber(body, "max_completion_tokens", { min: 1, integer: true }) ??
        optionalNumber(body, "max_tokens", { min: 1, integer: true });
    const temperature = optionalNumber(body, "temperature", { min: 0, max: 2 }) ?? 0;
    const topP = optionalNumber(body, "top_p", { min: 0, max: 1 });
    const seed = optionalNumber(body, "seed", { integer: true });
    let stop = body.stop ?? [];
    if (typeof stop === "string") stop = [stop];
    if (!Array.isArray(stop) || stop.length > 4 || stop.some((s) => typeof s !== "string" || s === ""))
        throw new RequestError(400, "stop must be a string or an array of up to 4 non-empty strings", {
            param: "stop",
        });
    if (body.stream != null && typeof body.stream !== "boolean")
        throw new RequestError(400, "stream must be a boolean", { param: "stream" });
    const includeUsage = body.stream === true && body.stream_options?.include_usage === true;
    // body.tools / tool_choice: accepted, ignored (see the header comment).
    return { history, maxTokens, temperature, topP, seed, stop, stream: body.stream === true, includeUsage };
}

function finishReason(stopReason) {
    return stopReason === "maxTokens" ? "length" : "stop";
}

// Serve one request at a time: the model has one context sequence.
let queue = Promise.resolve();
function enqueue(job) {
    const run = queue.then(job);
    queue = run.catch(() => {});
    return run;
}

// Runs one completion on the (cleared) sequence. onText gets each piece of
// the reply as it is generated.
async function complete(request, { onText, signal }) {
    if (signal?.aborted) throw new RequestError(499, "the client went away before its turn");
    await sequence.clearHistory();
    const promptTokens = chat.chatWrapper
        .generateContextState({ chatHistory: request.history })
        .contextText.tokenize(model.tokenizer).length;
    const room = context.contextSize - promptTokens;
    if (room < 1)
        throw new RequestError(
            400,
            `the messages take ${promptTokens} tokens; this model's context is ${context.contextSize}`,
            { code: "context_length_exceeded", param: "messages" },
        );
    const maxTokens = Math.min(request.maxTokens ?? room, room);
    let completionTokens = 0;
    const sampling =
        request.temperature > 0
            ? { temperature: request.temperature, topP: request.topP, seed: request.seed }
            : { temperature: 0 };
    const result = await chat.generateResponse(request.history, {
        ...sampling,
        maxTokens,
        customStopTriggers: request.stop.length > 0 ? request.stop : undefined,
        onToken: (tokens) => {
            completionTokens += tokens.length;
        },
        onTextChunk: onText,
        signal,
        stopOnAbortSignal: true,
    });
    return {
        text: result.response,
        finishReason: finishReason(result.metadata.stopReason),
        usage: {
            prompt_tokens: promptTokens,
            completion_tokens: completionTokens,
            total_tokens: promptTokens + completionTokens,
        },
    };
}

// ------------------------------------------------------------------- routes

function modelObject() {
    return { id: modelId, object: "model", created: Math.floor(loadStarted / 1000), owned_by: "caxton-tests" };
}

async function chatCompletions(req, res) {
    let body;
    try {
        body = JSON.parse(await readBody(req));
    } catch (err) {
        if (err instanceof RequestError) throw err;
        throw new RequestError(400, `the request body is not valid JSON: ${err.message}`);
    }
    const request = parseRequest(body);
    const id = `chatcmpl-${randomBytes(12).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    const abort = new AbortController();
    res.on("close", () => {
        if (!res.writableFinished) abort.abort(new Error("client went away"));
    });

    if (!request.stream) {
        const started = Date.now();
        const out = await enqueue(() => complete(request, { signal: abort.signal }));
        log(`chat.completion ${out.usage.prompt_tokens}+${out.usage.completion_tokens} tokens in ${Date.now() - started} ms`);
        sendJson(res, 200, {
            id,
            object: "chat.completion",
            created,
            model: modelId,
            choices: [
                {
                    index: 0,
                    message: { role: "assistant", content: out.text, refusal: null },
                    logprobs: null,
                    finish_reason: out.finishReason,
                },
            ],
            usage: out.usage,
            system_fingerprint: null,
        });
        return;
    }

    const chunk = (delta, finish_reason = null) => ({
        id,
        object: "chat.completion.chunk",
        created,
        model: modelId,
        system_fingerprint: null,
        choices: [{ index: 0, delta, logprobs: null, finish_reason }],
        ...(request.includeUsage ? { usage: null } : {}),
    });
    const send = (data) => {
        if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    let started = false;
    const start = () => {
        if (started) return;
        started = true;
        res.writeHead(200, {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            connection: "keep-alive",
        });
        send(chunk({ role: "assistant", content: "" }));
    };
    const began = Date.now();
    // Errors before the first byte (e.g. context_length_exceeded) are still
    // plain JSON error responses.
    const out = await enqueue(async () => {
        const result = await complete(request, {
            signal: abort.signal,
            onText: (text) => {
                start();
                if (text !== "") send(chunk({ content: text }));
            },
        });
        start();
        return result;
    });
    log(`chat.completion.chunk ${out.usage.prompt_tokens}+${out.usage.completion_tokens} tokens in ${Date.now() - began} ms`);
    send(chunk({}, out.finishReason));
    if (request.includeUsage) {
        send({ id, object: "chat.completion.chunk", created, model: modelId, system_fingerprint: null, choices: [], usage: out.usage });
    }
    if (!res.writableEnded && !res.destroyed) res.end("data: [DONE]\n\n");
}

async function route(req, res) {
    const url = new URL(req.url, "http://localhost");
    const p = url.pathname.replace(/\/+$/, "");
    if (p === "/v1/models" || p === "/models") {
        if (req.method !== "GET") throw new RequestError(405, `${req.method} ${p} is not supported`);
        return sendJson(res, 200, { object: "list", data: [modelObject()] });
    }
    const one = /^\/(?:v1\/)?models\/(.+)$/.exec(p);
    if (one) {
        if (req.method !== "GET") throw new RequestError(405, `${req.method} ${p} is not supported`);
        if (decodeURIComponent(one[1]) !== modelId)
            throw new RequestError(404, `the model ${JSON.stringify(decodeURIComponent(one[1]))} does not exist`, {
                code: "model_not_found",
            });
        return sendJson(res, 200, modelObject());
    }
    if (p === "/v1/chat/completions" || p === "/chat/completions") {
        if (req.method !== "POST") throw new RequestError(405, `${req.method} ${p} is not supported`);
        return chatCompletions(req, res);
    }
    if (p === "/health") return sendJson(res, 200, { status: "ok", model: modelId });
    throw new RequestError(404, `no route for ${req.method} ${url.pathname}`);
}

const server = http.createServer((req, res) => {
    route(req, res).catch((err) => {
        if (!(err instanceof RequestError)) {
            log("error:", err?.stack ?? String(err));
            err = new RequestError(500, `internal error: ${err?.message ?? err}`, { type: "server_error" });
        }
        if (!res.headersSent) sendError(res, err);
        else if (!res.writableEnded) res.end();
    });
});
server.keepAliveTimeout = 5000;

server.listen(port, args.host, () => {
    const { address, port: bound } = server.address();
    const host = address.includes(":") ? `[${address}]` : address;
    process.stdout.write(`listening on http://${host}:${bound}\n`);
});

// Exit at once: the OS frees the model; disposing llama.cpp first only adds
// a second or so to every test's teardown.
function shutdown(signal) {
    log(`${signal}: exiting`);
    process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
