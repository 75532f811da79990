import { RoomEvent, TrackKind, VideoStream, type RemoteParticipant, type RemoteTrack, type Room, type VideoFrame } from '@livekit/rtc-node';
import { llm, voice } from '@livekit/agents';

/**
 * The latest frame of the user's camera. agents-js 1.9 declares
 * `videoEnabled` but has no video input path, so the worker reads the user's
 * video track itself and keeps only the newest frame.
 */
export class LatestFrame {
  frame: VideoFrame | undefined;
  private readonly streams = new Set<VideoStream>();

  constructor(
    room: Room,
    private readonly ignoreIdentities: Set<string>,
  ) {
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant: RemoteParticipant) => this.watch(track, participant));
    for (const p of room.remoteParticipants.values()) {
      for (const pub of p.trackPublications.values()) if (pub.track) this.watch(pub.track as RemoteTrack, p);
    }
  }

  private watch(track: RemoteTrack, participant: RemoteParticipant): void {
    if (track.kind !== TrackKind.KIND_VIDEO || this.ignoreIdentities.has(participant.identity)) return;
    const stream = new VideoStream(track);
    this.streams.add(stream);
    void (async () => {
      try {
        for await (const ev of stream) this.frame = ev.frame;
      } catch {
        /* track ended */
      } finally {
        this.streams.delete(stream);
      }
    })();
  }

  close(): void {
    for (const s of this.streams) void s.cancel();
    this.streams.clear();
  }
}

/** The agent: instructions, the conversation so far when it replaces one that died, and with vision on, the user's latest camera frame added to each user turn. */
export class RuntimeAgent extends voice.Agent {
  constructor(
    instructions: string,
    private readonly frames?: LatestFrame,
    chatCtx?: llm.ChatContext,
  ) {
    super({ instructions, ...(chatCtx ? { chatCtx } : {}) });
  }

  override async onUserTurnCompleted(_chatCtx: llm.ChatContext, newMessage: llm.ChatMessage): Promise<void> {
    const frame = this.frames?.frame;
    if (frame) newMessage.content.push(llm.createImageContent({ image: frame, inferenceDetail: 'low' }));
  }
}
