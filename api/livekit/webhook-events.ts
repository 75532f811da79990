import type { WebhookEvent } from 'livekit-server-sdk';
import { SESSION_ATTRIBUTE } from '../../common/sessions/attributes.js';
import type { SessionModels } from '../../common/sessions/model.js';
import type { SessionStore } from '../../common/sessions/store.js';

/** ParticipantInfo.Kind.AGENT in LiveKit's protocol. */
const AGENT_KIND = 4;


export interface WebhookDeps {
  store: SessionStore;
  models: SessionModels;
  /** Told when a session's agent joined, whoever recorded it as active first (worker or webhook). */
  onAgentJoined?(sessionId: string): void | Promise<void>;
}

/** The session an agent participant serves: its attribute, else the open session of the room. */
async function sessionFor(d: WebhookDeps, room: string, attributes: Record<string, string> | undefined): Promise<string | undefined> {
  const named = attributes?.[SESSION_ATTRIBUTE];
  if (named) return named;
  const open = await d.models.Session.find({ roomName: room, status: { $in: ['queued', 'dispatching', 'dispatched', 'active'] } }, { _id: 1, status: 1 })
    .sort({ _id: 1 })
    .lean();
  // In a room shared by several sessions, the oldest one still waiting for its agent.
  return (open.find((s) => s.status !== 'active') ?? open[0])?._id;
}

async function end(d: WebhookDeps, sessionId: string, reason?: string): Promise<boolean> {
  const s = await d.store.get(sessionId);
  if (!s) return false;
  const activeAt = s.transitions.find((t) => t.status === 'active')?.at;
  const endedAt = new Date();
  return d.store.transition(sessionId, 'ended', {
    endedAt,
    durationSeconds: activeAt ? Math.round((endedAt.getTime() - new Date(activeAt).getTime()) / 100) / 10 : 0,
    ...(reason ? { failureReason: reason } : {}),
  });
}

/**
 * LiveKit's word on what happened in a room: an agent joined (active), the
 * agent left or the room finished (ended). Replays are harmless: the state
 * machine ignores moves that already happened.
 */
export async function applyWebhookEvent(e: WebhookEvent, d: WebhookDeps): Promise<{ sessionId?: string; applied: boolean }> {
  const room = e.room?.name;
  if (!room) return { applied: false };
  switch (e.event) {
    case 'participant_joined': {
      if (e.participant?.kind !== AGENT_KIND) return { applied: false };
      const sessionId = await sessionFor(d, room, e.participant.attributes);
      if (!sessionId) return { applied: false };
      const applied = await d.store.transition(sessionId, 'active');
      await d.onAgentJoined?.(sessionId);
      return { sessionId, applied };
    }
    case 'participant_left': {
      if (e.participant?.kind !== AGENT_KIND) return { applied: false };
      const sessionId = e.participant.attributes?.[SESSION_ATTRIBUTE] ?? (await sessionFor(d, room, undefined));
      if (!sessionId) return { applied: false };
      return { sessionId, applied: await end(d, sessionId) };
    }
    case 'room_finished': {
      const open = await d.models.Session.find({ roomName: room, status: { $in: ['dispatching', 'dispatched', 'active'] } }, { _id: 1 }).lean();
      let applied = false;
      for (const s of open) applied = (await end(d, s._id)) || applied;
      return { applied };
    }
    default:
      return { applied: false };
  }
}
