import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SessionJob } from './sessions/index.js';

/**
 * The sessions queue. Every key lives under `QUEUE_PREFIX`; on Redis Cluster
 * give it a hash tag (`{agent-runtime}`) so a queue's keys share one slot.
 */
export const SESSIONS_QUEUE = 'sessions';

/** Retry delay: exponential from 500 ms, capped at 10 s, with jitter so replicas do not retry in step. */
export function dispatchBackoff(attemptsMade: number): number {
  const base = Math.min(10_000, 500 * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function sessionJobOptions(sessionId: string, attempts: number): JobsOptions {
  return {
    // jobId = sessionId: adding the same session twice is a no-op.
    jobId: sessionId,
    attempts,
    backoff: { type: 'dispatch' },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 24 * 3600 },
  };
}

/** The queue job of one placement of a session: its first dispatch, or a later generation's. */
export function placementJobOptions(job: SessionJob, attempts: number): JobsOptions {
  const gen = job.generation ?? 0;
  // A later generation goes to the head of the queue: its session was asked for long ago.
  return gen === 0 ? sessionJobOptions(job.sessionId, attempts) : { ...sessionJobOptions(`${job.sessionId}-g${gen}`, attempts), lifo: true };
}

export function sessionsQueue(connection: Redis, prefix: string): Queue<SessionJob> {
  return new Queue<SessionJob>(SESSIONS_QUEUE, { connection, prefix });
}

/**
 * The dispatcher's follow-ups of a dispatch (dispatcher/placement-checks.ts):
 * `placement` (was the job taken?), `join` (did the agent join?) and
 * `recover` (its worker died or its agent left while the user stayed).
 */
export const CHECKS_QUEUE = 'join-checks';

export interface Recovery {
  sessionId: string;
  /** The worker whose heartbeat lapsed. */
  workerId?: string;
  /** The job whose agent left the room. */
  jobId?: string;
}

/** `wait`: how many times the join check was put off for a job on its way. */
export type CheckJobs = { placement: SessionJob; join: { sessionId: string; generation: number; wait?: number }; recover: Recovery };
export type CheckName = keyof CheckJobs;

export function checksQueue(connection: Redis, prefix: string): Queue<CheckJobs[CheckName], unknown, CheckName> {
  return new Queue<CheckJobs[CheckName], unknown, CheckName>(CHECKS_QUEUE, { connection, prefix });
}

/** BullMQ ids take no `:`; ids of LiveKit jobs and workers are plain, but make sure. */
const idPart = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');

export function checkJobOptions(id: string, delay: number): JobsOptions {
  return { jobId: idPart(id), delay, attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: { age: 24 * 3600 } };
}

export async function enqueueRecovery(queue: Queue<CheckJobs[CheckName], unknown, CheckName>, r: Recovery): Promise<void> {
  await queue.add('recover', r, checkJobOptions(`rcv_${r.sessionId}_${r.workerId ?? r.jobId ?? ''}`, 0));
}
