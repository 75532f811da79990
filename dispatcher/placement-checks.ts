import type { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import { usersIn } from '../common/livekit.js';
import type { Recovery } from '../common/queue.js';
import { endedFields, jobFromRecord, PLACEABLE_STATUSES, type Placements, type SessionJob, type SessionStore, TERMINAL_STATUSES } from '../common/sessions/index.js';
import type { WorkerCapacity } from '../common/workers/capacity.js';
import { withdrawSessionDispatches } from './session-dispatches.js';

/**
 * What the dispatcher does after a dispatch, so that a session gets its agent
 * and keeps one. Each is a job of the `join-checks` queue (durable, retried,
 * deduplicated by id):
 *
 * - placement: about a second after a dispatch, was its job taken by a
 *   worker? LiveKit drops a job no worker could take and never offers it
 *   again; then the session is placed again, with backoff, for as long as it
 *   is wanted.
 * - join: AGENT_JOIN_TIMEOUT after the job was taken, has the agent joined?
 *   The last resort for a job taken and then lost: placed again once, then
 *   the session fails `agent_never_joined`.
 * - recover: the worker serving a session died (its heartbeat lapsed) or its
 *   agent left while the user stayed: with the user still in the room, a new
 *   agent is placed there and continues the conversation; without, the
 *   session ends.
 */
export interface PlacementDeps {
  store: SessionStore;
  placements: Placements;
  capacity: WorkerCapacity;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
  agentName: string;
  /** DISPATCH_MODE=capacity: jobs are claimed by workers, so whether one was taken is known. */
  claims: boolean;
  /** Queues the job of a later generation (at the head of the queue). */
  requeue(job: SessionJob): Promise<void>;
}

/** Delay of the placement check after generation `gen`'s dispatch: 1 s, then backing off to 8 s. */
export function placementCheckDelay(gen: number): number {
  return Math.min(8000, Math.round(1000 * 1.5 ** gen));
}

export type PlacementOutcome = 'taken' | 'placed-again' | 'moved-on';

export async function checkPlacement(job: SessionJob, d: PlacementDeps): Promise<PlacementOutcome> {
  const gen = job.generation ?? 0;
  const p = await d.placements.get(job.sessionId);
  if (p.over || p.gen !== gen) return 'moved-on';
  if (p.jobId) return 'taken';
  const r = await d.placements.replace(job.sessionId, { gen });
  if ('refused' in r) return r.refused === 'placed' ? 'taken' : 'moved-on';
  await d.requeue({ ...job, generation: r.gen });
  return 'placed-again';
}

export type JoinOutcome = 'joined-or-over' | 'redispatched' | 'failed' | { later: number };

/** A job taken may wait this many join timeouts for its worker to start it a process (bursts on a busy host). */
const START_GRACE = 4;

/**
 * `timeoutMs` (AGENT_JOIN_TIMEOUT) after a job was taken: has its agent joined?
 * With claims, a job still waiting for a process on a live worker, or one
 * that began less than `timeoutMs` ago, is on its way: look again later.
 */
export async function checkAgentJoined(check: { sessionId: string; generation: number }, d: PlacementDeps, timeoutMs: number): Promise<JoinOutcome> {
  // With claims: until when is the job on its way? (still waiting for a process, or begun less than timeoutMs ago)
  let onItsWay = 0;
  if (d.claims) {
    const p = await d.placements.get(check.sessionId);
    if (p.over || p.gen !== check.generation) return 'joined-or-over';
    if (p.jobId && p.workerId && (await d.capacity.isLive(p.workerId))) {
      onItsWay = p.startedAt ? p.startedAt + timeoutMs : (p.acceptedAt ?? 0) + START_GRACE * timeoutMs;
    }
  }
  const s = await d.store.get(check.sessionId);
  if (!s || !PLACEABLE_STATUSES.includes(s.status)) return 'joined-or-over';
  if (Date.now() < onItsWay) return { later: onItsWay - Date.now() };
  if (!s.redispatches) {
    // Take the session from the job that never joined (force), unless it moved on since.
    const r = await d.placements.replace(s._id, { gen: check.generation, force: true });
    if ('refused' in r) return 'joined-or-over';
    await d.requeue({ ...jobFromRecord(s, r.gen), redispatches: 1 });
    return 'redispatched';
  }
  await withdrawSessionDispatches(d.dispatch, d.agentName, { roomName: s.roomName, sessionId: s._id });
  return (await d.store.transition(s._id, 'failed', { failureReason: 'agent_never_joined' })) ? 'failed' : 'joined-or-over';
}

/** A session whose agents died this often is not placed again: something in it kills them. */
export const MAX_RECOVERIES = 3;

export type RecoveryOutcome = 'replaced' | 'ended' | 'moved-on' | 'alive';

export async function recoverSession(r: Recovery, d: PlacementDeps): Promise<RecoveryOutcome> {
  const p = await d.placements.get(r.sessionId);
  if (p.over || (r.workerId && p.workerId !== r.workerId) || (r.jobId && p.jobId !== r.jobId)) return 'moved-on';
  // A worker that beats again was only slow: it keeps its sessions.
  if (r.workerId && (await d.capacity.isLive(r.workerId))) return 'alive';
  const s = await d.store.get(r.sessionId);
  if (!s || TERMINAL_STATUSES.includes(s.status)) return 'moved-on';

  // Nobody left to talk to, or agents that keep dying in this session: it is over.
  if ((await usersIn(d.rooms, s.roomName)).length === 0 || p.recoveries >= MAX_RECOVERIES) {
    await d.store.transition(s._id, 'ended', endedFields(s, 'agent_lost'));
    return 'ended';
  }

  if (s.status === 'active') await d.store.transition(s._id, 'recovering');
  const next = await d.placements.replace(s._id, { gen: p.gen, force: true, recovery: true });
  if ('refused' in next) return 'moved-on';
  // The dead agent stays in the room until LiveKit times its connection out (~20 s): take it out now.
  if (p.jobId) await d.rooms.removeParticipant(s.roomName, `agent-${p.jobId}`).catch(() => undefined);
  await d.requeue(jobFromRecord(s, next.gen));
  return 'replaced';
}
