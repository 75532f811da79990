import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';

export interface TokenSettings {
  apiKey: string;
  apiSecret: string;
  ttlSeconds: number;
}

/** A token for the end user: join this one room only, for a short time. */
export async function participantToken(
  s: TokenSettings,
  p: { room: string; identity: string; name?: string; metadata?: string; dispatch?: { agentName: string; metadata: string } },
): Promise<string> {
  const at = new AccessToken(s.apiKey, s.apiSecret, {
    identity: p.identity,
    ttl: s.ttlSeconds,
    ...(p.name ? { name: p.name } : {}),
    ...(p.metadata ? { metadata: p.metadata } : {}),
  });
  at.addGrant({ room: p.room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  if (p.dispatch) {
    // Dispatch on join: a user who joins before the dispatcher ran creates the room
    // with this dispatch. LiveKit applies it only when the join creates the room,
    // and the dispatcher's createRoom leaves an existing room as it is, so a
    // session never gets two agents.
    at.roomConfig = new RoomConfiguration({ agents: [new RoomAgentDispatch({ agentName: p.dispatch.agentName, metadata: p.dispatch.metadata })] });
  }
  return at.toJwt();
}
