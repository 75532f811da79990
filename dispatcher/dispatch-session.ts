import { RoomAgentDispatch, type AgentDispatchClient, type RoomServiceClient } from 'livekit-server-sdk';
import type { AgentResolver } from '../common/agent-resolver.js';
import { AgentNotFoundError } from '../common/errors.js';
import type { AgentConfig } from '../common/schemas/agent-config.js';
import type { AgentSlots } from '../common/sessions/agent-slots.js';
import { dispatchMetadata } from '../common/sessions/dispatch-metadata.js';
import { TERMINAL_STATUSES, type SessionJob } from '../common/sessions/schema.js';
import { ENTERED_FROM } from '../common/sessions/state.js';
import type { SessionStore } from '../common/sessions/store.js';
import { sessionDispatches, withdrawSessionDispatches } from './session-dispatches.js';

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
  | { result: 'dispatched' }
  | { result: 'skipped'; status: string }
  | { result: 'failed'; reason: string }
  | { result: 'busy' }
  /** The agent is at its maxConcurrentSessions: the session stays queued. */
  | { result: 'at-capacity' };

/**
 * Turns one queued session into exactly one LiveKit agent dispatch, in one
 * LiveKit call: the session's room is created carrying the dispatch
 * (CreateRoomRequest.agents). LiveKit makes a room's dispatches when it
 * creates the room and returns a room that already exists unchanged, and the
 * only other way a session's room comes to be, a participant token's dispatch
 * on join, carries the same dispatch; so running this again after any crash
 * never makes a second one.
 */
export async function dispatchSession(job: SessionJob, d: DispatchDeps, attempt = 1): Promise<Outcome> {
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
    // Only a session that still wants an agent gets a room (not cancelled, not dispatched by an
    // earlier run of this job). A record not written yet is queued.
    const before = (await d.store.status(job.sessionId)) ?? 'queued';
    if (!ENTERED_FROM.dispatched.includes(before)) return await skipped(job, d, config, before);

    const metadata = dispatchMetadata(job, configVersion);
    await d.rooms.createRoom({
      name: job.roomName,
      emptyTimeout: d.room.emptyTimeout,
      maxParticipants: d.room.maxParticipants,
      agents: [new RoomAgentDispatch({ agentName: d.agentName, metadata })],
    });
    if (!job.exclusiveRoom && !(await sessionDispatches(d.dispatch, d.agentName, job)).length) {
      // A room that existed before without this session's dispatch (named by the caller, or
      // joined early with a token that carried none) was returned unchanged: dispatch into it.
      await d.dispatch.createDispatch(job.roomName, d.agentName, { metadata });
    }

    if (!(await d.store.transition(job.sessionId, 'dispatched', { configVersion, attempts: attempt }, job))) {
      // Cancelled while we worked: take the dispatch back so no agent joins.
      const now = (await d.store.status(job.sessionId)) ?? 'unknown';
      if (now === 'cancelled') await withdrawSessionDispatches(d.dispatch, d.agentName, job).catch(() => undefined);
      return await skipped(job, d, config, now);
    }
    return { result: 'dispatched' };
  } finally {
    await release();
  }
}

async function skipped(job: SessionJob, d: DispatchDeps, config: AgentConfig, status: string): Promise<Outcome> {
  // A slot taken for a session that is already over goes back.
  if (config.maxConcurrentSessions && TERMINAL_STATUSES.includes(status as never)) await d.slots.release(job.agentId, job.sessionId);
  return { result: 'skipped', status };
}
