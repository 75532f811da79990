import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import { reservedRoomMetadata, roomMetadataFor } from '../../common/rooms.js';

export interface TokenSettings {
  apiKey: string;
  apiSecret: string;
  ttlSeconds: number;
}

/** A token for the end user: join this one room only, for a short time. */
export async function participantToken(
  s: TokenSettings,
  p: { room: string; sessionId: string; identity: string; name?: string; metadata?: string; dispatch?: { agentName: string; metadata: string } },
): Promise<string> {
  const at = new AccessToken(s.apiKey, s.apiSecret, {
    identity: p.identity,
    ttl: s.ttlSeconds,
    ...(p.name ? { name: p.name } : {}),
    ...(p.metadata ? { metadata: p.metadata } : {}),
  });
  at.addGrant({ room: p.room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  // A user who joins before the dispatcher ran creates the room with this configuration (LiveKit
  // applies it only when the join creates the room; the dispatcher's createRoom leaves an existing
  // room as it is). With the dispatch (dispatch on join) the room is made as the dispatcher would
  // make it, so a session never gets two agents; without it the room is still marked as this
  // session's, so no automatically dispatched agent takes it, and the dispatcher adds the dispatch
  // when the session's time comes.
  at.roomConfig = p.dispatch
    ? new RoomConfiguration({ metadata: roomMetadataFor(p.sessionId), agents: [new RoomAgentDispatch({ agentName: p.dispatch.agentName, metadata: p.dispatch.metadata })] })
    : new RoomConfiguration({ metadata: reservedRoomMetadata(p.sessionId) });
  return at.toJwt();
}
