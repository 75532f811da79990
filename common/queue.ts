import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SessionJob } from './sessions/schema.js';

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

export function sessionsQueue(connection: Redis, prefix: string): Queue<SessionJob> {
  return new Queue<SessionJob>(SESSIONS_QUEUE, { connection, prefix });
}
