import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/**
 * A short Redis lock (SET NX PX). It expires by itself, so a holder that was
 * SIGKILLed blocks nobody for longer than `ttlMs`; release only deletes the
 * lock if it is still ours.
 */
export async function acquireLock(redis: Redis, key: string, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
  const token = randomBytes(8).toString('hex');
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return undefined;
  return async () => {
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  };
}
