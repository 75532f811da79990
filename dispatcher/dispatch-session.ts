import { RoomAgentDispatch, type AgentDispatchClient, type RoomServiceClient } from 'livekit-server-sdk';
import type { AgentConfig, AgentResolver } from '../common/agents/index.js';
import { AgentNotFoundError } from '../common/errors.js';
import { roomMadeFor, roomMetadataFor } from '../common/rooms.js';
import {
  type AgentSlots,
  dispatchMetadata,
  ENTERED_FROM,
  generationOf,
  PLACEABLE_STATUSES,
  type Placements,
  type SessionJob,
  type SessionStatus,
  type SessionStore,
  TERMINAL_STATUSES,
} from '../common/sessions/index.js';
import type { CapacityGate } from './capacity-gate.js';
import { existingRoomDispatches, sessionDispatches, withdrawSessionDispatches } from './session-dispatches.js';

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
  placements: Placements;
  /** DISPATCH_MODE=capacity: every dispatch waits for a free worker slot. */
  gate?: CapacityGate;
  /** A dispatch waited this long for a worker slot. */
  onCapacityWait?(seconds: number): void;
}

export type Outcome =
  | { result: 'dispatched' }
  /** A later generation's dispatch was made (the session keeps its status). */
  | { result: 'placed' }
  | { result: 'skipped'; status: string }
  | { result: 'failed'; reason: string }
  | { result: 'busy' }
  /** The agent is at its maxConcurrentSessions: the session stays queued. */
  | { result: 'at-capacity' };

/**
 * Turns one session job into exactly one LiveKit agent dispatch.
 *
 * The first (generation 0) creates the session's room carrying the dispatch
 * (CreateRoomRequest.agents), in one LiveKit call. LiveKit makes a room's
 * dispatches when it creates the room and returns a room that already exists
 * unchanged; the room's metadata says whether this session's dispatcher made
 * it (then it has the dispatch) or somebody else did (then the dispatcher
 * looks, and adds the dispatch if missing). So running this again after any
 * crash never makes a second one.
 *
 * A later generation (the session is placed again) deletes the room's earlier
 * dispatches, which also stops any job LiveKit gave them, and adds its own.
 * Workers claim only the current generation's job, so at most one agent joins.
 *
 * In capacity mode a dispatch first reserves a free worker slot, waiting in
 * order while there is none.
 *
 * The agent's current config says whether it still exists and what its cap
 * is; the dispatch metadata names the version the session was asked with,
 * which is what its agent runs.
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

  // The version the session was asked with; a job queued before jobs carried one runs the current one.
  const configVersion = job.configVersion ?? config.version;
  if (config.maxConcurrentSessions && !(await d.slots.take(job.agentId, job.sessionId, config.maxConcurrentSessions))) {
    return { result: 'at-capacity' };
  }

  if (d.gate) {
    const waited = await d.gate.acquire(job.sessionId);
    if (waited > 0) d.onCapacityWait?.(waited / 1000);
  }
  let slotUsed = false;
  const release = await d.lock(job.sessionId);
  try {
    if (!release) return { result: 'busy' };
    const gen = job.generation ?? 0;
    const before = (await d.store.status(job.sessionId)) ?? 'queued';
    // Only a session that still wants an agent gets one (not cancelled, not dispatched by an
    // earlier run of this job, not placed again meanwhile). A record not written yet is queued.
    if (gen === 0 ? !ENTERED_FROM.dispatched.includes(before) : !PLACEABLE_STATUSES.includes(before)) return await skipped(job, d, config, before);
    if (gen > 0 && (await d.placements.get(job.sessionId)).gen !== gen) return await skipped(job, d, config, 'superseded');

    const metadata = dispatchMetadata(job, configVersion, gen);
    const outcome = gen === 0 ? await firstDispatch(job, d, metadata, { configVersion, attempts: attempt }) : await dispatchAgain(job, d, metadata, before);
    slotUsed = outcome.result === 'dispatched' || outcome.result === 'placed';
    return outcome.result === 'skipped' ? await skipped(job, d, config, outcome.status) : outcome;
  } finally {
    // A reserved worker slot that no dispatch uses goes back at once.
    if (d.gate && !slotUsed) await d.gate.release(job.sessionId);
    await release?.();
  }
}

/** The session's room, created carrying its dispatch; the record → dispatched. */
async function firstDispatch(job: SessionJob, d: DispatchDeps, metadata: string, fields: { configVersion: number; attempts: number }): Promise<Outcome> {
  const room = await d.rooms.createRoom({
    name: job.roomName,
    emptyTimeout: d.room.emptyTimeout,
    maxParticipants: d.room.maxParticipants,
    metadata: roomMetadataFor(job.sessionId),
    agents: [new RoomAgentDispatch({ agentName: d.agentName, metadata })],
  });
  if (!roomMadeFor(room.metadata, job.sessionId)) {
    // A room that existed before, returned unchanged (named by the caller, or opened by a user
    // joining first): dispatch into it unless this session's dispatch is there already, or an
    // automatically dispatched agent serves the room (a second agent would talk over it).
    const existing = await existingRoomDispatches(d.dispatch, d.agentName, job);
    if (existing.automaticAgent && !existing.ours.length) {
      if (await d.store.transition(job.sessionId, 'failed', { failureReason: 'room_has_agent', ...fields }, job)) return { result: 'failed', reason: 'room_has_agent' };
      return { result: 'skipped', status: (await d.store.status(job.sessionId)) ?? 'unknown' };
    }
    if (!existing.ours.length) await d.dispatch.createDispatch(job.roomName, d.agentName, { metadata });
  }
  if (await d.store.transition(job.sessionId, 'dispatched', fields, job)) return { result: 'dispatched' };
  // Cancelled while we worked: take the dispatch back so no agent joins.
  const now = (await d.store.status(job.sessionId)) ?? 'unknown';
  if (now === 'cancelled') await withdrawSessionDispatches(d.dispatch, d.agentName, job).catch(() => undefined);
  return { result: 'skipped', status: now };
}

/**
 * A later generation: the room's earlier dispatches go (deleting one also
 * stops any job LiveKit gave it), this generation's comes, once.
 */
async function dispatchAgain(job: SessionJob, d: DispatchDeps, metadata: string, status: SessionStatus): Promise<Outcome> {
  const gen = job.generation ?? 0;
  const existing = await sessionDispatches(d.dispatch, d.agentName, job);
  for (const x of existing) if (generationOf(x.metadata) < gen) await d.dispatch.deleteDispatch(x.id, job.roomName);
  const made = existing.find((x) => generationOf(x.metadata) === gen) ?? (await d.dispatch.createDispatch(job.roomName, d.agentName, { metadata }));
  // Placed again because the agent never joined: the record says so (and which dispatch is waited for now).
  if (job.redispatches) await d.store.update(job.sessionId, status, { dispatchId: made.id, redispatches: job.redispatches });
  return { result: 'placed' };
}

async function skipped(job: SessionJob, d: DispatchDeps, config: AgentConfig, status: string): Promise<Outcome> {
  // A slot taken for a session that is already over goes back.
  if (config.maxConcurrentSessions && TERMINAL_STATUSES.includes(status as never)) await d.slots.release(job.agentId, job.sessionId);
  return { result: 'skipped', status };
}
