import {
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  LocalVideoTrack,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoFrame,
  VideoSource,
  type RemoteParticipant,
  type RemoteTrack,
  type Room,
} from '@livekit/rtc-node';
import { pcmToFrames, rms } from './fakes/audio.js';
import { joinRoom } from './participant.js';

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
  loudestAgentAudio = 0;
  private constructor(readonly room: Room) {}

  static async join(url: string, token: string): Promise<TestUser> {
    const room = await joinRoom(url, token);
    const user = new TestUser(room);
    room.registerTextStreamHandler('lk.transcription', async (reader, info) => {
      const text = await reader.readAll();
      if (process.env.TEST_WORKER_LOGS) process.stderr.write(`[user] heard from ${info.identity}: ${text}\n`);
      user.transcripts.push({ from: info.identity, text });
    });
    const listen = (track: RemoteTrack, participant: RemoteParticipant) => {
      if (track.kind !== TrackKind.KIND_AUDIO) return;
      void (async () => {
        for await (const frame of new AudioStream(track)) {
          user.loudestAgentAudio = Math.max(user.loudestAgentAudio, rms(new Int16Array(frame.data.buffer, frame.data.byteOffset, frame.data.length)));
        }
      })().catch(() => undefined);
      void participant;
    };
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, p: RemoteParticipant) => listen(track, p));
    return user;
  }

  /** Speaks `pcm` (16-bit mono at `sampleRate`) in real time on a microphone track. */
  async speak(pcm: Int16Array, sampleRate: number): Promise<void> {
    const source = new AudioSource(sampleRate, 1);
    const track = LocalAudioTrack.createAudioTrack('mic', source);
    await this.room.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
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

  said(text: string): boolean {
    return this.transcripts.some((t) => t.text.includes(text));
  }

  async leave(): Promise<void> {
    await this.room.disconnect().catch(() => undefined);
  }
}
