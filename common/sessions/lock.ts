import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { acquireLock } from '../lock.js';
import type { SessionLock } from './store.js';

/** The per-session write lock: waits up to `waitMs` for a holder to finish. */
export function sessionLock(redis: Redis, prefix: string, waitMs = 5000): SessionLock {
  return async (sessionId) => {
    const key = `${prefix}:session-lock:${sessionId}`;
    const deadline = Date.now() + waitMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      const release = await acquireLock(redis, key, 10_000);
      if (release || Date.now() > deadline) return release;
      await sleep(delay);
    }
  };
}
