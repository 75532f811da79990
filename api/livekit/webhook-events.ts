import type { ParticipantInfo, RoomServiceClient, WebhookEvent } from 'livekit-server-sdk';
import { AGENT_KIND, usersIn } from '../../common/livekit.js';
import type { Recovery } from '../../common/queue.js';
import { endedFields, ENTERED_FROM, GENERATION_ATTRIBUTE, type Placements, SESSION_ATTRIBUTE, type SessionStore } from '../../common/sessions/index.js';

export interface WebhookDeps {
  store: SessionStore;
  placements: Placements;
  rooms: RoomServiceClient;
  /** Asks the dispatcher to place a new agent for a session whose agent left while its user stayed. */
  recover(r: Recovery): Promise<void>;
  /** Told when a session's agent joined, whoever recorded it as active first (worker or webhook). */
  onAgentJoined?(sessionId: string): void | Promise<void>;
}

/** The session an agent participant serves: its attribute, else the open session of the room. */
async function sessionFor(d: WebhookDeps, room: string, attributes: Record<string, string> | undefined): Promise<string | undefined> {
  const named = attributes?.[SESSION_ATTRIBUTE];
  if (named) return named;
  const open = await d.store.openInRoom(room);
  // In a room shared by several sessions, the oldest one still waiting for its agent.
  return (open.find((s) => s.status !== 'active') ?? open[0])?._id;
}

async function end(d: WebhookDeps, sessionId: string, reason?: string): Promise<boolean> {
  const s = await d.store.get(sessionId);
  return s ? d.store.transition(sessionId, 'ended', endedFields(s, reason)) : false;
}

/**
 * Whether an agent participant is the one serving its session now. Each
 * placement of a session has a generation, on the agent's attributes; an
 * agent of an earlier one (replaced after its worker died) is history.
 */
async function isCurrentAgent(d: WebhookDeps, sessionId: string, p: ParticipantInfo): Promise<boolean> {
  const gen = p.attributes?.[GENERATION_ATTRIBUTE];
  if (gen === undefined) return true;
  return (await d.placements.get(sessionId)).gen === Number(gen);
}

/**
 * LiveKit's word on what happened in a room: an agent joined (active); the
 * agent left (ended, or, with its user still in the room, a new agent is
 * placed: recovering); the user left a session whose agent is being replaced,
 * or the room finished (ended). Each event comes here once (replays are
 * stopped by their id: webhook-replays.ts); a late one cannot move a session
 * backwards either: the state machine ignores moves that already happened.
 */
export async function applyWebhookEvent(e: WebhookEvent, d: WebhookDeps): Promise<{ sessionId?: string; applied: boolean }> {
  const room = e.room?.name;
  if (!room) return { applied: false };
  switch (e.event) {
    case 'participant_joined': {
      if (e.participant?.kind !== AGENT_KIND) return { applied: false };
      const sessionId = await sessionFor(d, room, e.participant.attributes);
      if (!sessionId || !(await isCurrentAgent(d, sessionId, e.participant))) return { applied: false };
      const applied = await d.store.transition(sessionId, 'active');
      await d.onAgentJoined?.(sessionId);
      return { sessionId, applied };
    }
    case 'participant_left': {
      const p = e.participant;
      if (!p) return { applied: false };
      if (p.kind !== AGENT_KIND) {
        // The user of a session whose agent is being replaced left: nobody is waiting for it any more.
        const waiting = (await d.store.openInRoom(room)).filter((s) => s.participantIdentity === p.identity && s.status === 'recovering');
        let applied = false;
        for (const s of waiting) applied = (await end(d, s._id)) || applied;
        return { applied };
      }
      const sessionId = p.attributes?.[SESSION_ATTRIBUTE] ?? (await sessionFor(d, room, undefined));
      if (!sessionId || !(await isCurrentAgent(d, sessionId, p))) return { applied: false };
      // An agent that vanished while its user stayed (its process died): a new one takes over.
      const jobId = p.identity.startsWith('agent-') ? p.identity.slice('agent-'.length) : undefined;
      const s = await d.store.get(sessionId);
      // Whether the user is still there cannot be asked (LiveKit not answering): the session ends, as it did before.
      // An automatic session has no dispatch to place again: it ends with its agent, as in the original deployment.
      if (jobId && s?.status === 'active' && s.source !== 'automatic' && (await usersIn(d.rooms, room).catch(() => [])).length > 0) {
        await d.recover({ sessionId, jobId });
        return { sessionId, applied: true };
      }
      return { sessionId, applied: await end(d, sessionId) };
    }
    case 'room_finished': {
      const open = (await d.store.openInRoom(room)).filter((s) => ENTERED_FROM.ended.includes(s.status));
      let applied = false;
      for (const s of open) applied = (await end(d, s._id)) || applied;
      return { applied };
    }
    default:
      return { applied: false };
  }
}
