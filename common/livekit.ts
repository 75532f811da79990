import { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';

export interface LivekitSettings {
  LIVEKIT_URL: string;
  LIVEKIT_API_KEY: string;
  LIVEKIT_API_SECRET: string;
}

/** livekit-server-sdk speaks Twirp over HTTP(S); the same host serves ws(s) to clients. */
export function livekitHttpUrl(url: string): string {
  return url.replace(/^ws(s?):\/\//, 'http$1://');
}

export function livekitClients(s: LivekitSettings) {
  const host = livekitHttpUrl(s.LIVEKIT_URL);
  return {
    rooms: new RoomServiceClient(host, s.LIVEKIT_API_KEY, s.LIVEKIT_API_SECRET),
    dispatch: new AgentDispatchClient(host, s.LIVEKIT_API_KEY, s.LIVEKIT_API_SECRET),
  };
}

/** ParticipantInfo.Kind.AGENT in LiveKit's protocol (livekit-server-sdk does not export the enum). */
export const AGENT_KIND = 4;
