import { TrackKind, type Room } from '@livekit/rtc-node';
import { voice } from '@livekit/agents';
import { AccessToken } from 'livekit-server-sdk';

export const BITHUMAN_IDENTITY = 'bithuman-avatar-agent';

export interface BitHumanOptions {
  avatarId: string;
  apiUrl: string;
  apiSecret: string;
  mode: 'cpu' | 'gpu';
  /** Where the avatar joins: the LiveKit URL the worker itself uses. */
  livekitUrl: string;
  livekitApiKey: string;
  livekitApiSecret: string;
  attempts?: number;
  timeoutMs?: number;
}

export class BitHumanError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'BitHumanError';
  }
}

/**
 * A BitHuman avatar for an agent session, on the pattern of the agents-js
 * avatar plugins: mint a token for the avatar participant (this room only,
 * publishing on behalf of the agent, no BitHuman secret inside), ask BitHuman
 * to join with it, and send the agent's speech to the avatar as a data stream
 * instead of publishing it directly.
 */
export class BitHumanAvatar extends voice.AvatarSession {
  constructor(private readonly o: BitHumanOptions) {
    super();
  }

  override get avatarIdentity(): string {
    return BITHUMAN_IDENTITY;
  }

  override get provider(): string {
    return 'bithuman';
  }

  async avatarToken(room: string, agentIdentity: string): Promise<string> {
    const at = new AccessToken(this.o.livekitApiKey, this.o.livekitApiSecret, {
      identity: BITHUMAN_IDENTITY,
      name: 'BitHuman avatar',
      ttl: 3600,
      attributes: { 'lk.publish_on_behalf': agentIdentity },
    });
    at.kind = 'agent';
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    return at.toJwt();
  }

  override async start(agentSession: voice.AgentSession, room: Room): Promise<void> {
    await super.start(agentSession, room);
    const agentIdentity = room.localParticipant?.identity;
    if (!room.name || !agentIdentity) throw new BitHumanError('the room must be connected before the avatar starts');
    const body = JSON.stringify({
      livekit_url: this.o.livekitUrl,
      livekit_token: await this.avatarToken(room.name, agentIdentity),
      room_name: room.name,
      mode: this.o.mode,
      agent_id: this.o.avatarId,
    });
    await this.request(body);
    agentSession.output.audio = new voice.DataStreamAudioOutput({
      room,
      destinationIdentity: BITHUMAN_IDENTITY,
      sampleRate: 16000,
      waitRemoteTrack: TrackKind.KIND_VIDEO,
    });
  }

  /** Retries timeouts and 5xx only; any other answer is final. */
  private async request(body: string): Promise<void> {
    const attempts = this.o.attempts ?? 3;
    for (let i = 1; ; i++) {
      let status: number | undefined;
      try {
        const res = await fetch(this.o.apiUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'api-secret': this.o.apiSecret },
          body,
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
        });
        status = res.status;
        const text = await res.text();
        if (res.ok) return;
        if (status < 500 || i >= attempts) throw new BitHumanError(`BitHuman answered ${status}: ${text.slice(0, 200)}`, status);
      } catch (err) {
        if (err instanceof BitHumanError) throw err;
        if (i >= attempts) throw new BitHumanError(`BitHuman unreachable: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** (i - 1)));
    }
  }
}
