import { AccessToken, RoomAgentDispatch, RoomConfiguration } from 'livekit-server-sdk';
import type { ApiConfig } from '../../common/config.js';
import { reservedRoomMetadata, roomMetadataFor } from '../../common/rooms.js';
import { dispatchMetadata, type SessionJob, type SessionStatus } from '../../common/sessions/index.js';

export type TokenConfig = Pick<ApiConfig, 'LIVEKIT_API_KEY' | 'LIVEKIT_API_SECRET' | 'PARTICIPANT_TOKEN_TTL' | 'DISPATCH_MODE' | 'AGENT_NAME'>;

/** The session a token is for: its room, its participant, and what the dispatch-on-join rule looks at. */
export type TokenSession = Pick<SessionJob, 'sessionId' | 'agentId' | 'roomName' | 'participantIdentity' | 'metadata' | 'requestedAt' | 'scheduledAt' | 'configVersion'> & {
  status: SessionStatus;
};

/** What the rule needs of the session's agent. */
export interface TokenAgent {
  version: number;
  maxConcurrentSessions?: number | undefined;
}

/** Who joins with the token; unset fields fall back to the session's participant. */
export interface TokenParticipant {
  identity?: string | undefined;
  name?: string | undefined;
  metadata?: string | undefined;
}

/**
 * The end user's token for one session's room: join that room only, for
 * PARTICIPANT_TOKEN_TTL. Every participant token of a session is made here
 * (the 202 of POST /api/sessions, a batch with `tokens`, POST
 * /api/sessions/:id/token), so all of them follow the one rule below.
 *
 * `agent` may be a lookup: it is only asked for when the rest of the rule
 * would let the token carry the dispatch.
 */
export async function sessionToken(
  c: TokenConfig,
  s: TokenSession,
  agent: TokenAgent | (() => Promise<TokenAgent>),
  participant: TokenParticipant = {},
): Promise<string> {
  const at = new AccessToken(c.LIVEKIT_API_KEY, c.LIVEKIT_API_SECRET, {
    identity: participant.identity ?? s.participantIdentity,
    ttl: c.PARTICIPANT_TOKEN_TTL,
    ...(participant.name ? { name: participant.name } : {}),
    ...(participant.metadata ? { metadata: participant.metadata } : {}),
  });
  at.addGrant({ room: s.roomName, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  const dispatch = await dispatchOnJoin(c, s, agent);
  // A user who joins before the dispatcher ran creates the room with this configuration (LiveKit
  // applies it only when the join creates the room; the dispatcher's createRoom leaves an existing
  // room as it is). With the dispatch (dispatch on join) the room is made as the dispatcher would
  // make it, so a session never gets two agents; without it the room is still marked as this
  // session's, so no automatically dispatched agent takes it, and the dispatcher adds the dispatch
  // when the session's time comes.
  at.roomConfig = dispatch
    ? new RoomConfiguration({ metadata: roomMetadataFor(s.sessionId), agents: [new RoomAgentDispatch(dispatch)] })
    : new RoomConfiguration({ metadata: reservedRoomMetadata(s.sessionId) });
  return at.toJwt();
}

/**
 * The dispatch a session's token may carry: only where joining early cannot
 * jump anything. None for a scheduled session (its time), an agent with a
 * concurrency cap (the cap), in capacity mode (the sessions waiting for a
 * worker slot), or once the session is past `queued` (its first dispatch is
 * made or being retried: the room is the dispatcher's).
 */
async function dispatchOnJoin(c: TokenConfig, s: TokenSession, agent: TokenAgent | (() => Promise<TokenAgent>)): Promise<{ agentName: string; metadata: string } | undefined> {
  if (c.DISPATCH_MODE !== 'immediate' || s.scheduledAt || s.status !== 'queued') return undefined;
  const a = typeof agent === 'function' ? await agent() : agent;
  if (a.maxConcurrentSessions) return undefined;
  // The version the session is pinned to; the agent's current one for a session recorded before versions were.
  return { agentName: c.AGENT_NAME, metadata: dispatchMetadata(s, s.configVersion ?? a.version) };
}
