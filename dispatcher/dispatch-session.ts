import type { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import type { AgentResolver } from '../common/agent-resolver.js';
import { AgentNotFoundError } from '../common/errors.js';
import type { AgentConfig } from '../common/schemas/agent-config.js';
import type { AgentSlots } from '../common/sessions/agent-slots.js';
import { dispatchMetadata, sessionIdOf } from '../common/sessions/dispatch-metadata.js';
import { TERMINAL_STATUSES, type SessionJob } from '../common/sessions/schema.js';
import type { SessionStore } from '../common/sessions/store.js';

export interface DispatchDeps {
  store: SessionStore;
  resolver: AgentResolver;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
  agentName: string;
  room: { emptyTimeout: number; maxParticipants: number };
  /** Exclusive right to dispatch one session; resolves false when another process holds it. */
  lock(sessionId: string): Promise<(() => Promise<void>) | undefined>;
  slots: AgentSlots;
}

export type Outcome =
  | { result: 'dispatched'; dispatchId: string; reused: boolean }
  | { result: 'skipped'; status: string }
  | { result: 'failed'; reason: string }
  | { result: 'busy' }
  /** The agent is at its maxConcurrentSessions: the session stays queued. */
  | { result: 'at-capacity' };

/**
 * Turns one queued session into exactly one LiveKit agent dispatch. Safe to
 * run again after any crash: an existing dispatch for the session is found
 * in the room and reused, never made twice.
 */
export async function dispatchSession(job: SessionJob, d: DispatchDeps): Promise<Outcome> {
  let config: AgentConfig;
  try {
    config = (await d.resolver.resolve(job.agentId)).config;
  } catch (err) {
    if (!(err instanceof AgentNotFoundError)) throw err;
    await d.store.transition(job.sessionId, 'failed', { failureReason: 'agent_not_found' }, job);
    return { result: 'failed', reason: 'agent_not_found' };
  }

  const configVersion = config.version;
  if (config.maxConcurrentSessions && !(await d.slots.take(job.agentId, job.sessionId, config.maxConcurrentSessions))) {
    return { result: 'at-capacity' };
  }

  const release = await d.lock(job.sessionId);
  if (!release) return { result: 'busy' };
  try {
    // The move to dispatching is the check that the session still wants an agent
    // (not cancelled, not dispatched by an earlier run of this job).
    if (!(await d.store.transition(job.sessionId, 'dispatching', { configVersion }, job))) {
      const now = await d.store.get(job.sessionId);
      const status = now?.status ?? 'unknown';
      // A slot taken above for a session that is already over goes back.
      if (config.maxConcurrentSessions && TERMINAL_STATUSES.includes(status as never)) await d.slots.release(job.agentId, job.sessionId);
      return { result: 'skipped', status };
    }
    await d.rooms.createRoom({ name: job.roomName, emptyTimeout: d.room.emptyTimeout, maxParticipants: d.room.maxParticipants });
    const existing = (await d.dispatch.listDispatch(job.roomName)).find(
      (x) => x.agentName === d.agentName && sessionIdOf(x.metadata) === job.sessionId,
    );
    const made = existing ?? (await d.dispatch.createDispatch(job.roomName, d.agentName, { metadata: dispatchMetadata(job, configVersion) }));

    if (!(await d.store.transition(job.sessionId, 'dispatched', { dispatchId: made.id }))) {
      // Cancelled while we worked: take the dispatch back so no agent joins.
      const now = await d.store.get(job.sessionId);
      if (now?.status === 'cancelled') await d.dispatch.deleteDispatch(made.id, job.roomName).catch(() => undefined);
      return { result: 'skipped', status: now?.status ?? 'unknown' };
    }
    return { result: 'dispatched', dispatchId: made.id, reused: existing !== undefined };
  } finally {
    await release();
  }
}
