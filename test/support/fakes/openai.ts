/**
 * A local fake of the OpenAI REST API, speaking the wire protocol the `openai`
 * v6 SDK (and so @livekit/agents-plugin-openai 1.9) uses:
 *
 * - POST /v1/chat/completions — with `stream: true` an SSE stream of
 *   `chat.completion.chunk` objects (role chunk, content deltas or tool-call
 *   deltas, a finish_reason chunk, a usage chunk when
 *   `stream_options.include_usage`, then `data: [DONE]`); otherwise one
 *   `chat.completion` JSON.
 * - POST /v1/audio/speech — raw 24 kHz s16le mono PCM for `response_format:
 *   'pcm'` (a tone, ~60 ms per input character, capped at 3 s), or WAV for 'wav'.
 * - POST /v1/audio/transcriptions — multipart upload, answers `{ text }`.
 * - GET /v1/models (LLM prewarm) and GET /v1/models/:id.
 * - anything else: 404 with OpenAI's error shape.
 *
 * Give the plugins `baseURL: fake.url` (it ends in /v1, like the real one).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseWav, pcmToBytes, toneForText, wavFromPcm } from './audio.js';
import { closeServer, listenLocal, parseMultipart, randomId, readBody, sendJson } from './http.js';

export interface ChatContentPart {
  type: 'text' | 'image_url' | 'input_audio' | string;
  text?: string;
  image_url?: { url: string; detail?: string };
  [key: string]: unknown;
}

export interface ChatMessageParam {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool' | string;
  content?: string | ChatContentPart[] | null;
  tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
  [key: string]: unknown;
}

/** A chat completions request body, exactly as the client sent it (parsed JSON). */
export interface ChatRequest {
  model: string;
  messages: ChatMessageParam[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  tools?: Array<{ type: 'function'; function: { name: string; description?: string; parameters?: unknown } }>;
  tool_choice?: unknown;
  [key: string]: unknown;
}

export interface SpeechRequest {
  model: string;
  input: string;
  voice: string;
  response_format?: string;
  speed?: number;
  instructions?: string;
  [key: string]: unknown;
}

export interface TranscriptionUpload {
  fields: Record<string, string>;
  filename?: string;
  fileBytes: number;
  /** Duration of the uploaded audio when it was a parsable WAV. */
  audioSeconds?: number;
}

export interface FakeToolCall {
  name: string;
  /** JSON text, or an object that is serialised. */
  arguments: string | Record<string, unknown>;
  id?: string;
}

export interface FakeChatReply {
  text?: string;
  toolCalls?: FakeToolCall[];
}

/** What the fake answers a chat request with: text, a reply object, or a function of the request. */
export type ChatReplySpec =
  | string
  | FakeChatReply
  | ((req: ChatRequest, index: number) => string | FakeChatReply | Promise<string | FakeChatReply>);

export interface FakeOpenAIOptions {
  /** Chat reply; default DEFAULT_CHAT_REPLY. */
  reply?: ChatReplySpec;
  /** Text returned by /audio/transcriptions; default DEFAULT_TRANSCRIPTION. */
  transcription?: string;
  /** When set, /audio/transcriptions answers what this recognizes in the uploaded WAV instead. */
  recognizer?: { recognize(pcm: Int16Array, sampleRate: number): string };
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (else 401 invalid_api_key). */
  apiKey?: string;
  /** Pause between SSE chunks, ms (default 5) — the reply arrives as a real stream. */
  chunkDelayMs?: number;
  /** /audio/speech length per input character (default 60 ms), capped by maxSpeechSeconds (default 3). */
  msPerChar?: number;
  maxSpeechSeconds?: number;
  /** Model ids listed by GET /models (default ['gpt-4o-mini']). */
  models?: string[];
}

export interface FakeOpenAIRequests {
  chat: ChatRequest[];
  speech: SpeechRequest[];
  /** Number of /audio/transcriptions requests. */
  transcriptions: number;
  transcriptionUploads: TranscriptionUpload[];
  /** Number of GET /models requests (the LLM's prewarm). */
  models: number;
}

export interface FakeOpenAI {
  /** Base URL ending in /v1, e.g. http://127.0.0.1:43121/v1 — pass as `baseURL`. */
  readonly url: string;
  readonly requests: FakeOpenAIRequests;
  /** The Authorization header of every request, in order. */
  readonly authHeaders: string[];
  setReply(reply: ChatReplySpec): void;
  setTranscription(text: string): void;
  /** Transcriptions from the uploaded audio itself from now on (undefined: back to the fixed text). */
  setRecognizer(r: FakeOpenAIOptions['recognizer']): void;
  /** The next `count` requests (any endpoint) answer `status` with an OpenAI error body. */
  failNext(status: number, count?: number): void;
  close(): Promise<void>;
}

export const DEFAULT_CHAT_REPLY = 'Hello! This is the fake assistant speaking.';
export const DEFAULT_TRANSCRIPTION = 'Hello from the fake transcription.';
export const OPENAI_TTS_SAMPLE_RATE = 24000;

function openaiError(message: string, type: string, code: string | null = null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

function errorForStatus(status: number) {
  switch (status) {
    case 400:
      return openaiError('Bad request (injected by the fake).', 'invalid_request_error');
    case 401:
      return openaiError('Incorrect API key provided (injected by the fake).', 'invalid_request_error', 'invalid_api_key');
    case 429:
      return openaiError('Rate limit reached (injected by the fake).', 'requests', 'rate_limit_exceeded');
    default:
      return openaiError(`The server had an error while processing your request (injected status ${status}).`, 'server_error');
  }
}

/** Text of a message's content (string content, or its text parts joined). */
export function messageText(msg: ChatMessageParam): string {
  if (typeof msg.content === 'string') return msg.content;
  if (Array.isArray(msg.content)) {
    return msg.content.filter((p) => p.type === 'text' && typeof p.text === 'string').map((p) => p.text).join('');
  }
  return '';
}

/** The system/developer instructions of a chat request, joined by newlines. */
export function instructionsOf(req: ChatRequest): string {
  return req.messages.filter((m) => m.role === 'system' || m.role === 'developer').map(messageText).join('\n');
}

/** The text of the last user message of a chat request ('' if none). */
export function lastUserText(req: ChatRequest): string {
  const users = req.messages.filter((m) => m.role === 'user');
  return users.length ? messageText(users[users.length - 1]!) : '';
}

/** Every image_url part's URL in a chat request (data: URLs for frames the agent captured). */
export function imageUrlsOf(req: ChatRequest): string[] {
  return req.messages.flatMap((m) =>
    Array.isArray(m.content) ? m.content.filter((p) => p.type === 'image_url' && p.image_url).map((p) => p.image_url!.url) : [],
  );
}

function normaliseReply(r: string | FakeChatReply): FakeChatReply {
  return typeof r === 'string' ? { text: r } : r;
}

/** Splits text into word-sized deltas that concatenate back to exactly the text. */
function textDeltas(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text ? [text] : []);
}

function estimateTokens(s: string): number {
  return Math.max(1, Math.ceil(s.length / 4));
}

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  let reply: ChatReplySpec = opts.reply ?? DEFAULT_CHAT_REPLY;
  let transcription = opts.transcription ?? DEFAULT_TRANSCRIPTION;
  let recognizer = opts.recognizer;
  const chunkDelayMs = opts.chunkDelayMs ?? 5;
  const models = opts.models ?? ['gpt-4o-mini'];
  const requests: FakeOpenAIRequests = { chat: [], speech: [], transcriptions: 0, transcriptionUploads: [], models: 0 };
  const authHeaders: string[] = [];
  const failures: number[] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const requestId = randomId('req_');
    res.setHeader('x-request-id', requestId);
    res.setHeader('openai-processing-ms', '1');
    authHeaders.push(req.headers.authorization ?? '');

    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      await readBody(req).catch(() => undefined);
      sendJson(res, 401, openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
      return;
    }
    const injected = failures.shift();
    if (injected !== undefined) {
      await readBody(req).catch(() => undefined);
      sendJson(res, injected, errorForStatus(injected));
      return;
    }

    const p = url.pathname.replace(/\/+$/, '');
    if (method === 'POST' && p === '/v1/chat/completions') return chat(req, res);
    if (method === 'POST' && p === '/v1/audio/speech') return speech(req, res);
    if (method === 'POST' && p === '/v1/audio/transcriptions') return transcriptions(req, res);
    if (method === 'GET' && p === '/v1/models') {
      requests.models++;
      sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'system' })),
      });
      return;
    }
    if (method === 'GET' && p.startsWith('/v1/models/')) {
      const id = decodeURIComponent(p.slice('/v1/models/'.length));
      if (models.includes(id)) sendJson(res, 200, { id, object: 'model', created: 1_700_000_000, owned_by: 'system' });
      else sendJson(res, 404, openaiError(`The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model'));
      return;
    }
    await readBody(req).catch(() => undefined);
    sendJson(res, 404, openaiError(`Invalid URL (${method} ${url.pathname})`, 'invalid_request_error'));
  }

  async function jsonBody(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
    const raw = await readBody(req);
    try {
      const v = JSON.parse(raw.toString('utf8')) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // fall through
    }
    sendJson(res, 400, openaiError('We could not parse the JSON body of your request.', 'invalid_request_error'));
    return undefined;
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await jsonBody(req, res);
    if (!body) return;
    if (typeof body.model !== 'string' || !body.model) {
      sendJson(res, 400, openaiError('you must provide a model parameter', 'invalid_request_error', null, 'model'));
      return;
    }
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      sendJson(res, 400, openaiError("Missing required parameter: 'messages'.", 'invalid_request_error', 'missing_required_parameter', 'messages'));
      return;
    }
    const creq = body as ChatRequest;
    const index = requests.chat.length;
    requests.chat.push(creq);
    let answer: FakeChatReply;
    try {
      answer = normaliseReply(typeof reply === 'function' ? await reply(creq, index) : reply);
    } catch (err) {
      sendJson(res, 500, openaiError(`fake reply function failed: ${String(err)}`, 'server_error'));
      return;
    }
    const id = `chatcmpl-${randomId()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = creq.model;
    const text = answer.text ?? '';
    const toolCalls = (answer.toolCalls ?? []).map((tc, i) => ({
      id: tc.id ?? `call_${randomId()}`,
      type: 'function' as const,
      function: { name: tc.name, arguments: typeof tc.arguments === 'string' ? tc.arguments : JSON.stringify(tc.arguments) },
      index: i,
    }));
    const finishReason = toolCalls.length ? 'tool_calls' : 'stop';
    const promptTokens = estimateTokens(JSON.stringify(creq.messages));
    const completionTokens = estimateTokens(text + toolCalls.map((t) => t.function.arguments).join(''));
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };

    if (!creq.stream) {
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        system_fingerprint: 'fp_fake',
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: toolCalls.length && !text ? null : text,
              refusal: null,
              ...(toolCalls.length ? { tool_calls: toolCalls.map(({ index: _i, ...t }) => t) } : {}),
            },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage,
      });
      return;
    }

    const includeUsage = creq.stream_options?.include_usage === true;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    let aborted = false;
    res.on('close', () => {
      if (!res.writableFinished) aborted = true;
    });
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
    const send = async (obj: unknown) => {
      if (aborted) return;
      res.write(`data: ${JSON.stringify(obj)}\n\n`);
      if (chunkDelayMs > 0) await sleep(chunkDelayMs);
    };
    const choice = (delta: unknown, finish: string | null = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });

    await send(chunk([choice({ role: 'assistant', content: '', refusal: null })]));
    for (const d of textDeltas(text)) await send(chunk([choice({ content: d })]));
    for (const tc of toolCalls) {
      await send(chunk([choice({ tool_calls: [{ index: tc.index, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }] })]));
      const args = tc.function.arguments;
      for (let i = 0; i < args.length; i += 16) {
        await send(chunk([choice({ tool_calls: [{ index: tc.index, function: { arguments: args.slice(i, i + 16) } }] })]));
      }
    }
    await send(chunk([choice({}, finishReason)]));
    if (includeUsage) await send(chunk([], { usage }));
    if (!aborted) {
      res.write('data: [DONE]\n\n');
      res.end();
    }
  }

  async function speech(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await jsonBody(req, res);
    if (!body) return;
    const sreq = body as SpeechRequest;
    requests.speech.push(sreq);
    if (typeof sreq.input !== 'string' || !sreq.input) {
      sendJson(res, 400, openaiError("Missing required parameter: 'input'.", 'invalid_request_error', 'missing_required_parameter', 'input'));
      return;
    }
    const format = sreq.response_format ?? 'mp3';
    if (format !== 'pcm' && format !== 'wav') {
      sendJson(res, 400, openaiError(`the fake only produces response_format 'pcm' or 'wav', not '${format}'`, 'invalid_request_error', null, 'response_format'));
      return;
    }
    const pcm = toneForText(sreq.input, OPENAI_TTS_SAMPLE_RATE, {
      msPerChar: opts.msPerChar ?? 60,
      maxSeconds: opts.maxSpeechSeconds ?? 3,
    });
    const bytes = format === 'wav' ? wavFromPcm(pcm, OPENAI_TTS_SAMPLE_RATE) : pcmToBytes(pcm);
    res.writeHead(200, {
      'content-type': format === 'wav' ? 'audio/wav' : 'audio/pcm',
      'transfer-encoding': 'chunked',
    });
    // Streamed in ~100 ms pieces, as the real endpoint does.
    const piece = OPENAI_TTS_SAMPLE_RATE * 2 * 0.1;
    for (let off = 0; off < bytes.length; off += piece) {
      if (res.destroyed) return;
      res.write(bytes.subarray(off, Math.min(off + piece, bytes.length)));
    }
    res.end();
  }

  async function transcriptions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const contentType = req.headers['content-type'] ?? '';
    const raw = await readBody(req);
    requests.transcriptions++;
    if (!/^multipart\/form-data/i.test(contentType)) {
      sendJson(res, 400, openaiError('Expected a multipart/form-data body.', 'invalid_request_error'));
      return;
    }
    let parts;
    try {
      parts = parseMultipart(raw, contentType);
    } catch (err) {
      sendJson(res, 400, openaiError(`Malformed multipart body: ${String(err)}`, 'invalid_request_error'));
      return;
    }
    const fields: Record<string, string> = {};
    let file: (typeof parts)[number] | undefined;
    for (const part of parts) {
      if (part.filename !== undefined) file = part;
      else fields[part.name] = part.data.toString('utf8');
    }
    if (!file) {
      sendJson(res, 400, openaiError("Missing required parameter: 'file'.", 'invalid_request_error', 'missing_required_parameter', 'file'));
      return;
    }
    let audioSeconds: number | undefined;
    let text = transcription;
    try {
      const wav = parseWav(file.data);
      audioSeconds = wav.pcm.length / wav.sampleRate;
      if (recognizer) text = recognizer.recognize(wav.pcm, wav.sampleRate);
    } catch {
      // not a WAV: fine, the real API takes many formats
    }
    requests.transcriptionUploads.push({
      fields,
      ...(file.filename !== undefined ? { filename: file.filename } : {}),
      fileBytes: file.data.length,
      ...(audioSeconds !== undefined ? { audioSeconds } : {}),
    });
    const format = fields.response_format ?? 'json';
    if (format === 'text') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
      return;
    }
    if (format === 'verbose_json') {
      sendJson(res, 200, { task: 'transcribe', language: fields.language ?? 'english', duration: audioSeconds ?? 0, text: text, segments: [] });
      return;
    }
    sendJson(res, 200, { text: text, usage: { type: 'duration', seconds: Math.ceil(audioSeconds ?? 0) } });
  }

  const { server, port } = await listenLocal((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, openaiError(`fake server error: ${String(err)}`, 'server_error'));
      else res.destroy();
    });
  });

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    authHeaders,
    setReply(r) {
      reply = r;
    },
    setTranscription(t) {
      transcription = t;
    },
    setRecognizer(r) {
      recognizer = r;
    },
    failNext(status, count = 1) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    close: () => closeServer(server),
  };
}
