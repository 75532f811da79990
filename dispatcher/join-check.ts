import type { AgentDispatchClient } from 'livekit-server-sdk';
import { dispatchMetadata } from '../common/sessions/dispatch-metadata.js';
import type { SessionStore } from '../common/sessions/store.js';
import { withdrawSessionDispatches } from './session-dispatches.js';

export interface JoinCheck {
  sessionId: string;
  /** 0 after the first dispatch, 1 after the re-dispatch. */
  round: number;
}

export type JoinCheckOutcome = 'joined-or-over' | 'redispatched' | 'failed';

/**
 * Runs AGENT_JOIN_TIMEOUT after a dispatch. Self-hosted LiveKit never
 * re-dispatches a job whose worker died (livekit/agents#1472), so if the
 * agent has not joined: the first time, the old dispatch is deleted and a new
 * one made; the second time, the session fails `agent_never_joined`.
 */
export async function checkAgentJoined(
  check: JoinCheck,
  d: { store: SessionStore; dispatch: AgentDispatchClient; agentName: string },
): Promise<JoinCheckOutcome> {
  const s = await d.store.get(check.sessionId);
  if (!s || s.status !== 'dispatched') return 'joined-or-over';
  await withdrawSessionDispatches(d.dispatch, d.agentName, { roomName: s.roomName, sessionId: s._id }).catch(() => undefined);
  if (check.round === 0) {
    const made = await d.dispatch.createDispatch(s.roomName, d.agentName, {
      metadata: dispatchMetadata(
        { agentId: s.agentId, sessionId: s._id, requestedAt: new Date(s.requestedAt).toISOString(), ...(s.metadata ? { metadata: s.metadata } : {}) },
        s.configVersion ?? 0,
      ),
    });
    if (await d.store.update(s._id, 'dispatched', { dispatchId: made.id, redispatches: 1 })) return 'redispatched';
    await d.dispatch.deleteDispatch(made.id, s.roomName).catch(() => undefined);
    return 'joined-or-over';
  }
  return (await d.store.transition(s._id, 'failed', { failureReason: 'agent_never_joined' })) ? 'failed' : 'joined-or-over';
}
