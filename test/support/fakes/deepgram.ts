/**
 * A local fake of Deepgram, speaking what @livekit/agents-plugin-deepgram 1.9 uses:
 *
 * - Live STT: websocket `GET /v1/listen?model=…&encoding=linear16&sample_rate=16000
 *   &channels=1&interim_results=true&vad_events=true&endpointing=25…` with
 *   `Authorization: Token <key>`. The client streams binary s16le PCM (100 ms
 *   pieces, and only while its energy filter hears something) plus JSON
 *   `{"type":"KeepAlive"}` (every 5 s), `{"type":"Finalize"}` (on flush) and
 *   `{"type":"CloseStream"}` (at the end). The fake measures the RMS of the
 *   audio in 20 ms windows and, per utterance: sends `SpeechStarted` at the
 *   first loud window (when vad_events=true), an interim `Results` (first half
 *   of the words) once `minSpeechSeconds` of loud audio arrived (when
 *   interim_results=true), and a final `Results` (is_final + speech_final, the
 *   configured transcript) when `endpointingMs` of quiet follows — or on
 *   Finalize/CloseStream, after `maxSpeechSeconds` of unbroken sound, or when the
 *   client stops sending for `idleFinalizeMs` — then `UtteranceEnd` when the URL
 *   asked for utterance_end_ms. An utterance with too little loud audio is closed
 *   with an empty final (so the client's START_OF_SPEECH is always ended). On
 *   CloseStream it sends `Metadata` and closes with 1000.
 * - Prerecorded STT: `POST /v1/listen` (the plugin's non-streaming recognize).
 * - Streaming TTS: websocket `/v1/speak?sample_rate=24000&model=…&encoding=linear16`:
 *   `{"type":"Speak","text"}` … `{"type":"Flush"}` → binary PCM then
 *   `{"type":"Flushed","sequence_id"}`; `{"type":"Clear"}` → `Cleared`;
 *   `{"type":"Close"}` → close. (Also `POST /v1/speak` over plain HTTP — but the
 *   plugin's non-streaming TTS hard-codes https on port 443, so only its
 *   streaming TTS can be pointed at this fake.)
 *
 * Give the plugins `baseUrl: fake.url` (ws://127.0.0.1:PORT, no path: the STT
 * appends /v1/listen, the TTS turns http→ws and appends /v1/speak).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseWav, pcmFromBytes, pcmToBytes, rms, toneForText } from './audio.js';
import { closeServer, listenLocal, readBody, sendJson } from './http.js';
import { createWsServer, rejectUpgrade, WS_OPEN, type WsSocket } from './ws.js';

export type TranscriptSpec = string | ((utteranceIndex: number) => string);

/** Names what an utterance's audio says (recognizer.ts): the transcript then depends on what was sent. */
export interface SpeechRecognizer {
  recognize(pcm: Int16Array, sampleRate: number): string;
}

export interface FakeDeepgramOptions {
  /** Final transcript of each utterance (or a function of its 0-based index). Default DEFAULT_DEEPGRAM_TRANSCRIPT. */
  transcript?: TranscriptSpec;
  /** When set, an utterance's transcript is what this recognizes in its audio, instead of `transcript`. */
  recognizer?: SpeechRecognizer;
  /** When set, connections must carry `Authorization: Token <apiKey>` (or Bearer), else HTTP 401. */
  apiKey?: string;
  /** Loud audio needed before an utterance counts as speech (default 0.5 s). */
  minSpeechSeconds?: number;
  /** Quiet audio that ends an utterance (default 300 ms; the URL's `endpointing` is ignored, the plugin sends 25). */
  endpointingMs?: number;
  /** Unbroken loud audio after which the utterance is finalised anyway (default 8 s). */
  maxSpeechSeconds?: number;
  /** Finalise a started utterance when no audio arrives for this long, wall clock (default 800 ms). */
  idleFinalizeMs?: number;
  /** RMS (full scale = 1) above which a 20 ms window is "loud" (default 0.01, about -40 dBFS). */
  speechRmsThreshold?: number;
  /** TTS tone length per character (default 60 ms), capped (default 3 s). */
  ttsMsPerChar?: number;
  ttsMaxSeconds?: number;
}

export interface DeepgramListenConnection {
  query: URLSearchParams;
  authorization: string;
  sampleRate: number;
  channels: number;
  audioBytes: number;
  /** JSON control messages the client sent (KeepAlive, Finalize, CloseStream, …). */
  clientMessages: Array<Record<string, unknown>>;
  /** Every JSON message the fake sent. */
  serverMessages: Array<Record<string, unknown>>;
  closed: boolean;
}

export interface DeepgramSpeakConnection {
  query: URLSearchParams;
  authorization: string;
  texts: string[];
  audioBytesSent: number;
  clientMessages: Array<Record<string, unknown>>;
  closed: boolean;
}

export interface FakeDeepgram {
  /** ws://127.0.0.1:PORT — the plugins' `baseUrl`. */
  readonly url: string;
  /** http://127.0.0.1:PORT — the same server for REST. */
  readonly httpUrl: string;
  /** Accepted /v1/listen websocket connections. */
  readonly connections: number;
  /** Authorization header of every listen/speak attempt and REST request, in order (rejected ones too). */
  readonly authHeaders: string[];
  /** Binary audio bytes received over all /v1/listen websockets. */
  readonly audioBytes: number;
  /** Final Results with a non-empty transcript sent so far. */
  readonly finalTranscripts: string[];
  readonly listens: DeepgramListenConnection[];
  readonly speaks: DeepgramSpeakConnection[];
  setTranscript(text: TranscriptSpec): void;
  /** Transcripts from the audio itself from now on (undefined: back to the scripted ones). */
  setRecognizer(r: SpeechRecognizer | undefined): void;
  /** Closes every open websocket with `code` (default 1011), as a server crash would. */
  dropConnections(code?: number): void;
  close(): Promise<void>;
}

export const DEFAULT_DEEPGRAM_TRANSCRIPT = 'hello from the fake deepgram';

const MODEL_INFO = { name: '2-general-nova', version: '2024-01-18.26916', arch: 'nova-3' };
const MODEL_UUID = 'c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c';

function words(transcript: string, start: number, duration: number) {
  const tokens = transcript.split(/\s+/).filter(Boolean);
  const each = tokens.length ? duration / tokens.length : 0;
  return tokens.map((tok, i) => ({
    word: tok.toLowerCase().replace(/[^\p{L}\p{N}']+/gu, ''),
    start: round(start + i * each),
    end: round(start + (i + 1) * each),
    confidence: 0.98,
    punctuated_word: tok,
  }));
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

class ListenSession {
  readonly record: DeepgramListenConnection;
  private readonly requestId = randomUUID();
  private readonly windowSamples: number;
  private carry = Buffer.alloc(0);
  private cursor = 0; // seconds of audio received
  private state: 'idle' | 'speaking' | 'spent' = 'idle';
  private uttStart = 0;
  private voiced = 0;
  private silenceRun = 0;
  private lastVoicedEnd = 0;
  private interimSent = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** The current utterance's audio, loud and quiet windows alike, for a recognizer. */
  private uttAudio: Int16Array[] = [];

  constructor(
    private readonly ws: WsSocket,
    private readonly server: FakeDeepgramServer,
    query: URLSearchParams,
    authorization: string,
  ) {
    const sampleRate = Number(query.get('sample_rate') ?? 16000) || 16000;
    const channels = Number(query.get('channels') ?? 1) || 1;
    this.record = { query, authorization, sampleRate, channels, audioBytes: 0, clientMessages: [], serverMessages: [], closed: false };
    this.windowSamples = Math.max(1, Math.round(sampleRate * 0.02)) * channels;
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.onAudio(data);
      else this.onControl(data.toString('utf8'));
    });
    ws.on('close', () => {
      this.record.closed = true;
      this.clearIdle();
    });
    ws.on('error', () => undefined);
  }

  private get opts() {
    return this.server.options;
  }

  private send(msg: Record<string, unknown>): void {
    if (this.ws.readyState !== WS_OPEN) return;
    this.record.serverMessages.push(msg);
    this.ws.send(JSON.stringify(msg));
  }

  private onAudio(data: Buffer): void {
    this.record.audioBytes += data.length;
    this.server.audioBytesTotal += data.length;
    const buf = this.carry.length ? Buffer.concat([this.carry, data]) : data;
    const windowBytes = this.windowSamples * 2;
    let off = 0;
    for (; off + windowBytes <= buf.length; off += windowBytes) {
      this.onWindow(pcmFromBytes(buf.subarray(off, off + windowBytes)));
    }
    this.carry = Buffer.from(buf.subarray(off));
    this.armIdle();
  }

  private onWindow(pcm: Int16Array): void {
    const dur = pcm.length / this.record.channels / this.record.sampleRate;
    const t0 = this.cursor;
    this.cursor += dur;
    const loud = rms(pcm) >= (this.opts.speechRmsThreshold ?? 0.01);
    if (this.state === 'speaking' || loud) this.uttAudio.push(pcm);
    if (loud) {
      this.silenceRun = 0;
      this.lastVoicedEnd = this.cursor;
      if (this.state === 'idle') {
        this.state = 'speaking';
        this.uttStart = t0;
        this.voiced = 0;
        this.interimSent = false;
        this.uttAudio = [];
        if (this.record.query.get('vad_events') === 'true') {
          this.send({ type: 'SpeechStarted', channel: [0, 1], timestamp: round(t0) });
        }
      }
      if (this.state === 'speaking') {
        this.voiced += dur;
        const minSpeech = this.opts.minSpeechSeconds ?? 0.5;
        // A recognizer names an utterance only once it is whole: no interim guess then.
        if (!this.interimSent && !this.server.recognizer && this.voiced >= minSpeech && this.record.query.get('interim_results') === 'true') {
          this.interimSent = true;
          const text = this.server.transcriptFor(this.server.utteranceIndex);
          const tokens = text.split(/\s+/).filter(Boolean);
          this.sendResults(tokens.slice(0, Math.ceil(tokens.length / 2)).join(' '), false, false, this.cursor);
        }
        if (this.voiced >= (this.opts.maxSpeechSeconds ?? 8)) this.finalize(false, 'spent');
      }
    } else {
      this.silenceRun += dur;
      const endpoint = (this.opts.endpointingMs ?? 300) / 1000;
      if (this.silenceRun >= endpoint) {
        if (this.state === 'speaking') this.finalize(false, 'idle');
        else if (this.state === 'spent') this.state = 'idle';
      }
    }
  }

  private sendResults(transcript: string, isFinal: boolean, speechFinal: boolean, end: number, fromFinalize = false): void {
    const start = this.uttStart;
    const duration = Math.max(0, end - start);
    this.send({
      type: 'Results',
      channel_index: [0, 1],
      duration: round(duration),
      start: round(start),
      is_final: isFinal,
      speech_final: speechFinal,
      from_finalize: fromFinalize,
      channel: {
        alternatives: [{ transcript, confidence: transcript ? 0.98 : 0, words: words(transcript, start, duration) }],
      },
      metadata: { request_id: this.requestId, model_info: MODEL_INFO, model_uuid: MODEL_UUID },
    });
  }

  /** Ends the current utterance with a final Results (empty if it was too short to be speech). */
  private finalize(fromFinalize: boolean, next: 'idle' | 'spent'): void {
    if (this.state !== 'speaking') return;
    this.clearIdle();
    const isSpeech = this.voiced >= (this.opts.minSpeechSeconds ?? 0.5);
    const end = Math.max(this.lastVoicedEnd, this.uttStart);
    if (isSpeech) {
      const text = this.server.transcribe(this.uttAudio, this.record.sampleRate);
      this.sendResults(text, true, true, end, fromFinalize);
      this.server.finals.push(text);
      if (this.record.query.has('utterance_end_ms')) {
        this.send({ type: 'UtteranceEnd', channel: [0, 1], last_word_end: round(end) });
      }
    } else {
      this.sendResults('', true, true, end, fromFinalize);
    }
    this.state = next;
  }

  private armIdle(): void {
    this.clearIdle();
    if (this.state !== 'speaking') return;
    this.idleTimer = setTimeout(() => this.finalize(false, 'idle'), this.opts.idleFinalizeMs ?? 800);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onControl(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    this.record.clientMessages.push(msg);
    switch (msg.type) {
      case 'KeepAlive':
        return;
      case 'Finalize':
        this.finalize(true, 'idle');
        return;
      case 'CloseStream':
        this.finalize(true, 'idle');
        this.send({
          type: 'Metadata',
          transaction_key: 'deprecated',
          request_id: this.requestId,
          sha256: '0'.repeat(64),
          created: new Date().toISOString(),
          duration: round(this.cursor),
          channels: this.record.channels,
          models: [MODEL_UUID],
          model_info: { [MODEL_UUID]: MODEL_INFO },
        });
        this.ws.close(1000);
        return;
      default:
        return;
    }
  }
}

class SpeakSession {
  readonly record: DeepgramSpeakConnection;
  private pending = '';
  private seq = 0;
  private readonly sampleRate: number;

  constructor(
    private readonly ws: WsSocket,
    private readonly server: FakeDeepgramServer,
    query: URLSearchParams,
    authorization: string,
  ) {
    this.sampleRate = Number(query.get('sample_rate') ?? 24000) || 24000;
    this.record = { query, authorization, texts: [], audioBytesSent: 0, clientMessages: [], closed: false };
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.onControl(data.toString('utf8'));
    });
    ws.on('close', () => {
      this.record.closed = true;
    });
    ws.on('error', () => undefined);
    this.sendJson({
      type: 'Metadata',
      request_id: randomUUID(),
      model_name: query.get('model') ?? 'aura-2-andromeda-en',
      model_version: '2025-04-07.0',
      model_uuid: randomUUID(),
    });
  }

  private sendJson(msg: Record<string, unknown>): void {
    if (this.ws.readyState === WS_OPEN) this.ws.send(JSON.stringify(msg));
  }

  private onControl(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.sendJson({ type: 'Error', err_code: 'INVALID_MESSAGE', description: 'message is not JSON' });
      return;
    }
    this.record.clientMessages.push(msg);
    switch (msg.type) {
      case 'Speak':
        if (typeof msg.text === 'string') {
          this.pending += msg.text;
          this.record.texts.push(msg.text);
        }
        return;
      case 'Flush': {
        const text = this.pending.trim();
        this.pending = '';
        if (text) {
          const bytes = pcmToBytes(
            toneForText(text, this.sampleRate, {
              msPerChar: this.server.options.ttsMsPerChar ?? 60,
              maxSeconds: this.server.options.ttsMaxSeconds ?? 3,
              freq: 330,
            }),
          );
          const piece = Math.round(this.sampleRate * 0.1) * 2;
          for (let off = 0; off < bytes.length; off += piece) {
            if (this.ws.readyState !== WS_OPEN) return;
            const chunk = bytes.subarray(off, Math.min(off + piece, bytes.length));
            this.ws.send(chunk);
            this.record.audioBytesSent += chunk.length;
          }
        }
        this.sendJson({ type: 'Flushed', sequence_id: this.seq++ });
        return;
      }
      case 'Clear':
        this.pending = '';
        this.sendJson({ type: 'Cleared', sequence_id: this.seq++ });
        return;
      case 'Close':
        this.ws.close(1000);
        return;
      default:
        this.sendJson({ type: 'Warning', warn_code: 'UNKNOWN_MESSAGE_TYPE', warn_msg: `unknown message type ${String(msg.type)}` });
    }
  }
}

class FakeDeepgramServer {
  utteranceIndex = 0;
  audioBytesTotal = 0;
  readonly finals: string[] = [];
  readonly listens: DeepgramListenConnection[] = [];
  readonly speaks: DeepgramSpeakConnection[] = [];
  readonly authHeaders: string[] = [];
  private transcript: TranscriptSpec;

  constructor(readonly options: FakeDeepgramOptions) {
    this.transcript = options.transcript ?? DEFAULT_DEEPGRAM_TRANSCRIPT;
    this.recognizer = options.recognizer;
  }

  setTranscript(t: TranscriptSpec): void {
    this.transcript = t;
  }

  recognizer: SpeechRecognizer | undefined;

  /** The final transcript of an utterance: recognized from its audio, or the next scripted one. */
  transcribe(audio: Int16Array[], sampleRate: number): string {
    if (!this.recognizer) return this.transcriptFor(this.utteranceIndex++);
    this.utteranceIndex++;
    const pcm = new Int16Array(audio.reduce((n, a) => n + a.length, 0));
    let off = 0;
    for (const a of audio) {
      pcm.set(a, off);
      off += a.length;
    }
    return this.recognizer.recognize(pcm, sampleRate);
  }

  transcriptFor(i: number): string {
    return typeof this.transcript === 'function' ? this.transcript(i) : this.transcript;
  }

  authorized(header: string | undefined): boolean {
    const key = this.options.apiKey;
    if (key === undefined) return typeof header === 'string' && /^(Token|Bearer) \S+/.test(header);
    return header === `Token ${key}` || header === `Bearer ${key}`;
  }

  /** REST: prerecorded /v1/listen and /v1/speak. */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const requestId = randomUUID();
    res.setHeader('dg-request-id', requestId);
    this.authHeaders.push(req.headers.authorization ?? '');
    const body = await readBody(req);
    if (!this.authorized(req.headers.authorization)) {
      sendJson(res, 401, { err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.', request_id: requestId });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/listen') {
      let pcm: Int16Array;
      let sampleRate: number;
      try {
        const wav = parseWav(body);
        pcm = wav.pcm;
        sampleRate = wav.sampleRate;
      } catch {
        pcm = pcmFromBytes(body);
        sampleRate = Number(url.searchParams.get('sample_rate') ?? 16000) || 16000;
      }
      const win = Math.max(1, Math.round(sampleRate * 0.02));
      let loud = 0;
      for (let off = 0; off + win <= pcm.length; off += win) {
        if (rms(pcm.subarray(off, off + win)) >= (this.options.speechRmsThreshold ?? 0.01)) loud += win / sampleRate;
      }
      const duration = pcm.length / sampleRate;
      const transcript = loud >= (this.options.minSpeechSeconds ?? 0.5) ? this.transcribe([pcm], sampleRate) : '';
      if (transcript) this.finals.push(transcript);
      sendJson(res, 200, {
        metadata: {
          transaction_key: 'deprecated',
          request_id: requestId,
          sha256: '0'.repeat(64),
          created: new Date().toISOString(),
          duration: round(duration),
          channels: 1,
          models: [MODEL_UUID],
          model_info: { [MODEL_UUID]: MODEL_INFO },
        },
        results: {
          channels: [{ alternatives: [{ transcript, confidence: transcript ? 0.98 : 0, words: words(transcript, 0, duration) }] }],
        },
      });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/speak') {
      let text = '';
      try {
        text = String((JSON.parse(body.toString('utf8')) as { text?: unknown }).text ?? '');
      } catch {
        // empty
      }
      if (!text) {
        sendJson(res, 400, { err_code: 'Bad Request', err_msg: 'text is required', request_id: requestId });
        return;
      }
      const sampleRate = Number(url.searchParams.get('sample_rate') ?? 24000) || 24000;
      const bytes = pcmToBytes(toneForText(text, sampleRate, { msPerChar: this.options.ttsMsPerChar ?? 60, maxSeconds: this.options.ttsMaxSeconds ?? 3, freq: 330 }));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
      res.end(bytes);
      return;
    }
    sendJson(res, 404, { err_code: 'NOT_FOUND', err_msg: `no route for ${req.method} ${url.pathname}`, request_id: requestId });
  }
}

export async function startFakeDeepgram(opts: FakeDeepgramOptions = {}): Promise<FakeDeepgram> {
  const state = new FakeDeepgramServer(opts);
  const wss = createWsServer();
  const { server, port } = await listenLocal((req, res) => {
    state.handleHttp(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { err_code: 'INTERNAL', err_msg: String(err) });
      else res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const auth = req.headers.authorization ?? '';
    const isListen = url.pathname === '/v1/listen';
    const isSpeak = url.pathname === '/v1/speak';
    if (!isListen && !isSpeak) {
      rejectUpgrade(socket, 404, { err_code: 'NOT_FOUND', err_msg: `no websocket at ${url.pathname}` }, 'Not Found');
      return;
    }
    state.authHeaders.push(auth);
    if (!state.authorized(req.headers.authorization)) {
      rejectUpgrade(socket, 401, { err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.', request_id: randomUUID() }, 'Unauthorized');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (isListen) state.listens.push(new ListenSession(ws, state, url.searchParams, auth).record);
      else state.speaks.push(new SpeakSession(ws, state, url.searchParams, auth).record);
    });
  });

  return {
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    get connections() {
      return state.listens.length;
    },
    get authHeaders() {
      return state.authHeaders;
    },
    get audioBytes() {
      return state.audioBytesTotal;
    },
    get finalTranscripts() {
      return state.finals;
    },
    get listens() {
      return state.listens;
    },
    get speaks() {
      return state.speaks;
    },
    setTranscript(t) {
      state.setTranscript(t);
    },
    setRecognizer(r) {
      state.recognizer = r;
    },
    dropConnections(code = 1011) {
      for (const ws of wss.clients) ws.close(code);
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await closeServer(server);
    },
  };
}
