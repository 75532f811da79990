/**
 * A local fake of BitHuman's cloud avatar service.
 *
 * `POST /v1/runtime-tokens/request` with header `api-secret: <secret>` (the
 * JSON form the LiveKit BitHuman plugin sends to the default endpoint:
 * `{ livekit_url, livekit_token, room_name, mode, agent_id }`; multipart and
 * urlencoded bodies with `Authorization: Bearer <secret>` — the plugin's form
 * for custom endpoints — are accepted too) answers 200
 * `{"avatar_session_started": true}` and then, like the real service, joins
 * the LiveKit room with the given URL and token (@livekit/rtc-node) as the
 * avatar and plays the avatar's side of the agents' DataStream audio protocol
 * (see @livekit/agents voice/avatar/datastream_io.js, and Python's
 * DataStreamAudioReceiver + AvatarRunner it mirrors):
 *
 * - publishes a camera video track `avatar_video` (solid colour, a few fps) —
 *   AvatarSession.waitForJoin() waits for exactly that — and a microphone
 *   track `avatar_audio` replaying the agent's speech in real time;
 * - receives the agent's speech as byte streams on topic `lk.audio_stream`
 *   (one stream per segment; attributes `sample_rate`, `num_channels`; raw
 *   s16le), one stream at a time, paced at real time through an AudioSource;
 * - calls `lk.playback_started` (payload '') on the sender at a segment's first
 *   frame (the agent only registers it when created with waitPlaybackStart; an
 *   UNSUPPORTED_METHOD answer is ignored) and `lk.playback_finished` with
 *   `{"playback_position": seconds, "interrupted": false}` once the segment has
 *   played out — the agent's AudioOutput.waitForPlayout() waits for exactly one
 *   such call per segment;
 * - registers `lk.clear_buffer`: drops what is queued, skips the rest of the
 *   current stream and calls `lk.playback_finished` with `interrupted: true`
 *   and the position reached (the JS agent has no timeout for this answer);
 * - leaves when the participant it publishes on behalf of (the token's
 *   `lk.publish_on_behalf` attribute) leaves, or when the room empties.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AudioFrame,
  AudioResampler,
  AudioSource,
  LocalAudioTrack,
  LocalVideoTrack,
  Room,
  RoomEvent,
  RpcError,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame,
  VideoSource,
  type ByteStreamReader,
  type RemoteParticipant,
  type RpcInvocationData,
} from '@livekit/rtc-node';
import { closeServer, listenLocal, parseMultipart, readBody, sendJson } from './http.js';

export const AVATAR_AUDIO_TOPIC = 'lk.audio_stream';
export const RPC_CLEAR_BUFFER = 'lk.clear_buffer';
export const RPC_PLAYBACK_FINISHED = 'lk.playback_finished';
export const RPC_PLAYBACK_STARTED = 'lk.playback_started';
export const BITHUMAN_PATH = '/v1/runtime-tokens/request';

export interface FakeBitHumanOptions {
  secret: string;
  /** Join the room after a successful request (default true). */
  join?: boolean;
  /** Wait this long before joining, ms (default 0). */
  joinDelayMs?: number;
  videoWidth?: number;
  videoHeight?: number;
  /** Video frames per second (default 5). */
  fps?: number;
  /** RGB colour of the video (default [40, 120, 200]). */
  color?: [number, number, number];
  /** Sample rate of the published avatar_audio track (default 24000). */
  audioSampleRate?: number;
  /** Call lk.playback_started at each segment's first frame (default true). */
  notifyPlaybackStarted?: boolean;
}

export interface BitHumanRequestRecord {
  headers: IncomingHttpHeaders;
  contentType: string;
  /** Parsed body (JSON object, or the form fields). */
  body: Record<string, unknown>;
  /** Status the fake answered. */
  status: number;
  receivedAt: number;
}

export interface AvatarRpcCall {
  method: string;
  destination: string;
  payload: string;
  ok: boolean;
  error?: string;
}

export interface FakeAvatarSession {
  livekitUrl: string;
  roomName: string;
  /** From the token (`sub`). */
  identity?: string;
  /** The token's `lk.publish_on_behalf` attribute. */
  publishOnBehalf?: string;
  room?: Room;
  /** Connected and publishing video. */
  joined: boolean;
  left: boolean;
  error?: string;
  audioBytesReceived: number;
  /** Seconds of agent audio received (from the streams' sample_rate/num_channels). */
  audioSecondsReceived: number;
  /** Byte streams received on lk.audio_stream. */
  streams: number;
  /** Byte streams read to their end (or skipped to it after a clear_buffer). */
  streamsCompleted: number;
  /** Errors reading streams (e.g. the sender left mid-stream). */
  streamErrors: string[];
  streamSenders: string[];
  clearBufferCalls: number;
  /** Every lk.playback_finished payload sent, parsed. */
  playbackFinished: Array<{ playback_position: number; interrupted: boolean }>;
  rpcCalls: AvatarRpcCall[];
}

export interface FakeBitHuman {
  /** Full URL of POST /v1/runtime-tokens/request. */
  readonly url: string;
  readonly requests: BitHumanRequestRecord[];
  readonly sessions: FakeAvatarSession[];
  /** Whether any session has joined its room and published video. */
  readonly joined: boolean;
  /** Agent audio bytes received over all sessions. */
  readonly audioBytesReceived: number;
  /** The room of the latest session that connected. */
  readonly room: Room | undefined;
  /** The next `count` requests answer `status` (after being recorded), without joining. */
  failNext(status: number, count?: number): void;
  /** Resolves with the first joined session; rejects on a join error or timeout. */
  waitForJoin(timeoutMs?: number): Promise<FakeAvatarSession>;
  /** Resolves once `minBytes` of agent audio arrived (over all sessions). */
  waitForAudio(minBytes?: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

interface Segment {
  sender: string;
  started: boolean;
  cleared: boolean;
  done: boolean;
  pushed: number;
}

function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

async function waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

class AvatarRunner {
  private audioSource: AudioSource | undefined;
  private videoSource: VideoSource | undefined;
  private videoTimer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private current: Segment | undefined;
  private stopped = false;
  private readonly sampleRate: number;

  constructor(
    readonly session: FakeAvatarSession,
    private readonly token: string,
    private readonly opts: FakeBitHumanOptions,
  ) {
    this.sampleRate = opts.audioSampleRate ?? 24000;
  }

  async start(): Promise<void> {
    const room = new Room();
    room.registerByteStreamHandler(AVATAR_AUDIO_TOPIC, (reader, info) => {
      this.chain = this.chain.then(() => this.consume(reader, info.identity)).catch((err: unknown) => {
        this.session.streamErrors.push(err instanceof Error ? err.message : String(err));
      });
    });
    room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
      const principal = this.session.publishOnBehalf;
      if ((principal && p.identity === principal) || room.remoteParticipants.size === 0) void this.stop();
    });
    room.on(RoomEvent.Disconnected, () => void this.stop());
    await room.connect(this.session.livekitUrl, this.token, { autoSubscribe: true, dynacast: false });
    this.session.room = room;
    if (this.stopped) {
      await room.disconnect();
      return;
    }
    const lp = room.localParticipant!;
    lp.registerRpcMethod(RPC_CLEAR_BUFFER, async (data) => this.onClearBuffer(data));

    this.audioSource = new AudioSource(this.sampleRate, 1);
    const audioTrack = LocalAudioTrack.createAudioTrack('avatar_audio', this.audioSource);
    await lp.publishTrack(audioTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));

    const w = this.opts.videoWidth ?? 320;
    const h = this.opts.videoHeight ?? 240;
    const [r, g, b] = this.opts.color ?? [40, 120, 200];
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < rgba.length; i += 4) {
      rgba[i] = r;
      rgba[i + 1] = g;
      rgba[i + 2] = b;
      rgba[i + 3] = 255;
    }
    const frame = new VideoFrame(rgba, w, h, VideoBufferType.RGBA);
    this.videoSource = new VideoSource(w, h);
    const source = this.videoSource;
    const push = () => {
      if (!source.closed) source.captureFrame(frame);
    };
    push();
    const videoTrack = LocalVideoTrack.createVideoTrack('avatar_video', this.videoSource);
    await lp.publishTrack(videoTrack, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA }));
    this.videoTimer = setInterval(push, Math.round(1000 / (this.opts.fps ?? 5)));
    this.session.joined = true;
  }

  /** Plays one agent speech segment (one byte stream). */
  private async consume(reader: ByteStreamReader, sender: string): Promise<void> {
    const attrs = reader.info.attributes ?? {};
    const sr = Number(attrs.sample_rate);
    const ch = Number(attrs.num_channels);
    this.session.streams++;
    this.session.streamSenders.push(sender);
    if (!sr || !ch) {
      this.session.streamErrors.push('byte stream without sample_rate / num_channels attributes');
      for await (const chunk of reader) this.session.audioBytesReceived += chunk.byteLength;
      return;
    }
    const seg: Segment = { sender, started: false, cleared: false, done: false, pushed: 0 };
    this.current = seg;
    const resampler = sr !== this.sampleRate ? new AudioResampler(sr, this.sampleRate, 1) : undefined;
    const bytesPerFrame = 2 * ch;
    let carry = new Uint8Array(0);
    try {
      for await (const chunk of reader) {
        this.session.audioBytesReceived += chunk.byteLength;
        this.session.audioSecondsReceived += chunk.byteLength / bytesPerFrame / sr;
        if (seg.cleared || this.stopped) continue;
        const bytes = carry.length ? concatBytes(carry, chunk) : chunk;
        const usable = bytes.length - (bytes.length % bytesPerFrame);
        carry = bytes.slice(usable);
        if (usable === 0) continue;
        const mono = toMono(bytes.subarray(0, usable), ch);
        const input = new AudioFrame(mono, sr, 1, mono.length);
        for (const f of resampler ? resampler.push(input) : [input]) await this.play(seg, f);
      }
      this.session.streamsCompleted++;
      if (resampler && !seg.cleared && !this.stopped) for (const f of resampler.flush()) await this.play(seg, f);
      if (!seg.cleared && !this.stopped) await this.audioSource?.waitForPlayout();
      if (!seg.cleared && !this.stopped) {
        seg.done = true;
        await this.notifyFinished(seg.sender, seg.pushed, false);
      }
    } finally {
      seg.done = true;
      if (this.current === seg) this.current = undefined;
      resampler?.close();
    }
  }

  private async play(seg: Segment, frame: AudioFrame): Promise<void> {
    if (seg.cleared || this.stopped || !this.audioSource || frame.samplesPerChannel === 0) return;
    if (!seg.started) {
      seg.started = true;
      if (this.opts.notifyPlaybackStarted ?? true) void this.rpc(seg.sender, RPC_PLAYBACK_STARTED, '', 1);
    }
    await this.audioSource.captureFrame(frame);
    seg.pushed += frame.samplesPerChannel / frame.sampleRate;
  }

  private onClearBuffer(data: RpcInvocationData): string {
    this.session.clearBufferCalls++;
    const seg = this.current;
    if (seg && !seg.cleared && !seg.done) {
      seg.cleared = true;
      const queued = this.audioSource ? this.audioSource.queuedDuration / 1000 : 0;
      const played = Math.max(0, seg.pushed - queued);
      this.audioSource?.clearQueue();
      void this.notifyFinished(seg.sender || data.callerIdentity, played, true);
    }
    return 'ok';
  }

  private async notifyFinished(to: string, position: number, interrupted: boolean): Promise<void> {
    const payload = { playback_position: Math.round(position * 1000) / 1000, interrupted };
    this.session.playbackFinished.push(payload);
    await this.rpc(to, RPC_PLAYBACK_FINISHED, JSON.stringify(payload), 3);
  }

  private async rpc(destination: string, method: string, payload: string, attempts: number): Promise<void> {
    const lp = this.session.room?.localParticipant;
    const call: AvatarRpcCall = { method, destination, payload, ok: false };
    this.session.rpcCalls.push(call);
    for (let i = 0; i < attempts && lp && !this.stopped; i++) {
      try {
        await lp.performRpc({ destinationIdentity: destination, method, payload });
        call.ok = true;
        delete call.error;
        return;
      } catch (err) {
        call.error = err instanceof RpcError ? `${err.code} ${err.message}` : String(err);
        if (err instanceof RpcError && err.code === RpcError.ErrorCode.UNSUPPORTED_METHOD) return;
        await sleep(100);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.session.left = true;
    if (this.videoTimer) clearInterval(this.videoTimer);
    this.current = undefined;
    const room = this.session.room;
    try {
      if (room?.isConnected) await room.disconnect();
    } catch {
      // already gone
    }
    await this.audioSource?.close().catch(() => undefined);
    await this.videoSource?.close().catch(() => undefined);
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function toMono(bytes: Uint8Array, channels: number): Int16Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / 2 / channels;
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += view.getInt16((i * channels + c) * 2, true);
    out[i] = Math.round(s / channels);
  }
  return out;
}

async function parseBody(req: IncomingMessage, contentType: string): Promise<Record<string, unknown> | undefined> {
  const raw = await readBody(req);
  try {
    if (/^multipart\/form-data/i.test(contentType)) {
      const out: Record<string, unknown> = {};
      for (const p of parseMultipart(raw, contentType)) {
        out[p.name] = p.filename !== undefined ? { filename: p.filename, bytes: p.data.length } : p.data.toString('utf8');
      }
      return out;
    }
    if (/^application\/x-www-form-urlencoded/i.test(contentType)) {
      return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
    }
    const v = JSON.parse(raw.toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function startFakeBitHuman(opts: FakeBitHumanOptions): Promise<FakeBitHuman> {
  const requests: BitHumanRequestRecord[] = [];
  const sessions: FakeAvatarSession[] = [];
  const runners: AvatarRunner[] = [];
  const failures: number[] = [];
  let closed = false;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'POST' || url.pathname !== BITHUMAN_PATH) {
      await readBody(req).catch(() => undefined);
      sendJson(res, 404, { detail: 'Not Found' });
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    const body = await parseBody(req, contentType);
    const record: BitHumanRequestRecord = { headers: req.headers, contentType, body: body ?? {}, status: 0, receivedAt: Date.now() };
    requests.push(record);
    const answer = (status: number, payload: unknown) => {
      record.status = status;
      sendJson(res, status, payload);
    };
    const injected = failures.shift();
    if (injected !== undefined) {
      answer(injected, { detail: `injected failure (status ${injected})`, avatar_session_started: false });
      return;
    }
    const secretHeader = req.headers['api-secret'];
    const authorized =
      (typeof secretHeader === 'string' && secretHeader === opts.secret) || req.headers.authorization === `Bearer ${opts.secret}`;
    if (!authorized) {
      answer(401, { detail: 'Invalid API secret', avatar_session_started: false });
      return;
    }
    if (!body) {
      answer(400, { detail: 'Body must be a JSON object or form data', avatar_session_started: false });
      return;
    }
    const missing = ['livekit_url', 'livekit_token', 'room_name'].filter((k) => typeof body[k] !== 'string' || !body[k]);
    if (missing.length) {
      answer(422, { detail: missing.map((k) => ({ loc: ['body', k], msg: 'Field required', type: 'missing' })) });
      return;
    }
    answer(200, { avatar_session_started: true });
    if (opts.join === false || closed) return;

    const token = body.livekit_token as string;
    const claims = decodeJwtPayload(token);
    const attributes = (claims?.attributes ?? {}) as Record<string, string>;
    const session: FakeAvatarSession = {
      livekitUrl: body.livekit_url as string,
      roomName: body.room_name as string,
      ...(typeof claims?.sub === 'string' ? { identity: claims.sub } : {}),
      ...(attributes['lk.publish_on_behalf'] ? { publishOnBehalf: attributes['lk.publish_on_behalf'] } : {}),
      joined: false,
      left: false,
      audioBytesReceived: 0,
      audioSecondsReceived: 0,
      streams: 0,
      streamsCompleted: 0,
      streamErrors: [],
      streamSenders: [],
      clearBufferCalls: 0,
      playbackFinished: [],
      rpcCalls: [],
    };
    sessions.push(session);
    const runner = new AvatarRunner(session, token, opts);
    runners.push(runner);
    void (async () => {
      if (opts.joinDelayMs) await sleep(opts.joinDelayMs);
      if (closed) return;
      try {
        await runner.start();
      } catch (err) {
        session.error = `join failed: ${err instanceof Error ? err.message : String(err)}`;
        await runner.stop();
      }
    })();
  }

  const { server, port } = await listenLocal((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { detail: String(err) });
      else res.destroy();
    });
  });

  return {
    url: `http://127.0.0.1:${port}${BITHUMAN_PATH}`,
    requests,
    sessions,
    get joined() {
      return sessions.some((s) => s.joined);
    },
    get audioBytesReceived() {
      return sessions.reduce((n, s) => n + s.audioBytesReceived, 0);
    },
    get room() {
      return [...sessions].reverse().find((s) => s.room)?.room;
    },
    failNext(status, count = 1) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    waitForJoin(timeoutMs = 20_000) {
      return waitUntil(
        () => {
          const s = sessions.find((x) => x.joined);
          if (s) return s;
          const failed = sessions.find((x) => x.error && !x.joined);
          if (failed) throw new Error(`fake BitHuman avatar could not join: ${failed.error}`);
          return undefined;
        },
        timeoutMs,
        'the fake BitHuman avatar to join',
      );
    },
    async waitForAudio(minBytes = 1, timeoutMs = 20_000) {
      await waitUntil(() => (sessions.reduce((n, s) => n + s.audioBytesReceived, 0) >= minBytes ? true : undefined), timeoutMs, `${minBytes} bytes of agent audio at the fake avatar`);
    },
    async close() {
      closed = true;
      await Promise.all(runners.map((r) => r.stop()));
      await closeServer(server);
    },
  };
}
