import {
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  LocalVideoTrack,
  ParticipantKind,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame,
  VideoSource,
  type RemoteParticipant,
  type RemoteTrack,
} from '@livekit/rtc-node';
import { pcmToFrames, rms } from './fakes/audio.js';

/** RMS (full scale 1) above which the agent's audio counts as heard. */
const AUDIBLE = 0.01;

export interface Heard {
  from: string;
  text: string;
}

/**
 * An end user in a session's room: joins with the API's participant token,
 * collects what the agent says (transcriptions on lk.transcription, and the
 * loudness of its audio), and can speak and show a camera.
 */
export class TestUser {
  readonly transcripts: Heard[] = [];
  /** Every agent participant seen in the room, with when it joined (and left), in ms. */
  readonly agents: { identity: string; joinedAt: number; leftAt?: number }[] = [];
  /** When agent audio louder than the floor was first heard (ms). */
  firstAgentAudioAt: number | undefined;
  loudestAgentAudio = 0;
  /** Every received agent audio frame: when it arrived (ms) and whether it was audible. */
  readonly agentAudio: { at: number; audible: boolean }[] = [];
  private constructor(readonly room: Room) {}

  private mic: { source: AudioSource; sampleRate: number } | undefined;

  /**
   * Joins the room. With `microphone` the user publishes a microphone track at
   * once, as a real client does: LiveKit tells others about a publisher's
   * leave at once, a listener's only with its next batch (up to 3 s later).
   */
  static async join(url: string, token: string, o: { microphone?: boolean } = {}): Promise<TestUser> {
    const room = new Room();
    const user = new TestUser(room);
    const seen = (p: RemoteParticipant) => {
      if (p.kind === ParticipantKind.AGENT && p.identity.startsWith('agent-') && !user.agents.some((a) => a.identity === p.identity)) {
        user.agents.push({ identity: p.identity, joinedAt: Date.now() });
      }
    };
    room.on(RoomEvent.ParticipantConnected, seen);
    room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
      const a = user.agents.find((x) => x.identity === p.identity);
      if (a && a.leftAt === undefined) a.leftAt = Date.now();
    });
    await room.connect(url, token, { autoSubscribe: true, dynacast: false });
    for (const p of room.remoteParticipants.values()) seen(p);
    room.registerTextStreamHandler('lk.transcription', async (reader, info) => {
      // A stream cut by the user's own leave is simply not heard.
      const text = await reader.readAll().catch(() => undefined);
      if (text === undefined) return;
      if (process.env.TEST_WORKER_LOGS) process.stderr.write(`[user] heard from ${info.identity}: ${text}\n`);
      user.transcripts.push({ from: info.identity, text });
    });
    const listen = (track: RemoteTrack, participant: RemoteParticipant) => {
      if (track.kind !== TrackKind.KIND_AUDIO) return;
      void (async () => {
        for await (const frame of new AudioStream(track)) {
          const level = rms(new Int16Array(frame.data.buffer, frame.data.byteOffset, frame.data.length));
          const at = Date.now();
          if (level > AUDIBLE && user.firstAgentAudioAt === undefined) user.firstAgentAudioAt = at;
          user.agentAudio.push({ at, audible: level > AUDIBLE });
          user.loudestAgentAudio = Math.max(user.loudestAgentAudio, level);
        }
      })().catch(() => undefined);
      void participant;
    };
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, p: RemoteParticipant) => listen(track, p));
    if (o.microphone) await user.microphone(48000);
    return user;
  }

  /** The user's microphone track (published once). */
  private async microphone(sampleRate: number): Promise<AudioSource> {
    if (this.mic && this.mic.sampleRate === sampleRate) return this.mic.source;
    const source = new AudioSource(sampleRate, 1);
    const track = LocalAudioTrack.createAudioTrack('mic', source);
    await this.room.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    this.mic = { source, sampleRate };
    return source;
  }

  /** Speaks `pcm` (16-bit mono at `sampleRate`) in real time on the microphone track. */
  async speak(pcm: Int16Array, sampleRate: number): Promise<void> {
    const source = await this.microphone(sampleRate);
    for (const frame of pcmToFrames(pcm, sampleRate, 10)) await source.captureFrame(frame);
    await source.waitForPlayout();
  }

  /** Publishes a camera track showing one solid colour; returns a function that stops it. */
  async showCamera(rgb: [number, number, number], width = 64, height = 48): Promise<() => void> {
    const data = new Uint8Array(width * height * 4);
    for (let i = 0; i < data.length; i += 4) data.set([...rgb, 255], i);
    const frame = new VideoFrame(data, width, height, VideoBufferType.RGBA);
    const source = new VideoSource(width, height);
    const track = LocalVideoTrack.createVideoTrack('camera', source);
    await this.room.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_CAMERA }));
    const timer = setInterval(() => source.captureFrame(frame), 100);
    return () => clearInterval(timer);
  }

  /** Agents in the room now. */
  get agentsPresent(): string[] {
    return this.agents.filter((a) => a.leftAt === undefined).map((a) => a.identity);
  }

  /** Milliseconds of audible agent audio received in [from, to) (10 ms frames). */
  audibleMs(from: number, to = Infinity): number {
    let ms = 0;
    for (let i = 1; i < this.agentAudio.length; i++) {
      const f = this.agentAudio[i]!;
      if (f.audible && f.at >= from && f.at < to) ms += Math.min(20, f.at - this.agentAudio[i - 1]!.at) || 10;
    }
    return ms;
  }

  /** When agent audio was first audible at or after `from`. */
  firstAudibleAt(from: number): number | undefined {
    return this.agentAudio.find((f) => f.audible && f.at >= from)?.at;
  }

  /** When agent audio was last audible in [from, to). */
  lastAudibleAt(from: number, to = Infinity): number | undefined {
    for (let i = this.agentAudio.length - 1; i >= 0; i--) {
      const f = this.agentAudio[i]!;
      if (f.at < to && f.at >= from && f.audible) return f.at;
      if (f.at < from) return undefined;
    }
    return undefined;
  }

  /** Resolves once the agent, heard at some point since `since`, has been quiet for `quietMs` (its speech is over). */
  async agentQuiet(since: number, quietMs = 800, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const last = this.lastAudibleAt(since);
      if (last !== undefined && Date.now() - last > quietMs) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the agent did not fall quiet within ${timeoutMs} ms`);
  }

  said(text: string): boolean {
    return this.transcripts.some((t) => t.text.includes(text));
  }

  async leave(): Promise<void> {
    await this.room.disconnect().catch(() => undefined);
  }
}
