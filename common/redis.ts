import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/**
 * Redis connections. BullMQ workers block on Redis and need
 * `maxRetriesPerRequest: null`; request paths want to fail fast instead of
 * queueing commands while Redis is away (`enableOfflineQueue: false`).
 */
export function createRedis(url: string, kind: 'blocking' | 'fail-fast' = 'fail-fast', extra: RedisOptions = {}): Redis {
  const options: RedisOptions =
    kind === 'blocking'
      ? { maxRetriesPerRequest: null, enableReadyCheck: false }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 };
  return new Redis(url, { ...options, ...extra, lazyConnect: false });
}
