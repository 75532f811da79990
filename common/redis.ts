import { createHash } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/**
 * A REDIS_URL with `cluster=1` in its query names a Redis Cluster by one of
 * its nodes (the client finds the others). Every key of the runtime starts
 * with QUEUE_PREFIX, so a prefix with a hash tag (`{agent-runtime}`) puts them
 * all in one slot: scripts and pipelines over several keys stay legal.
 */
export function redisClusterSeed(url: string): { url: string; cluster: boolean } {
  const u = new URL(url);
  const cluster = ['1', 'true', 'yes'].includes(u.searchParams.get('cluster') ?? '');
  u.searchParams.delete('cluster');
  return { url: u.toString().replace(/\?$/, ''), cluster };
}

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
  const seed = redisClusterSeed(url);
  if (seed.cluster) return createCluster(seed.url, { ...options, ...extra });
  const client = new Redis(url, { ...options, ...extra, lazyConnect: false });
  // Connection errors also fail the commands that meet them, where they are handled;
  // without a listener ioredis would print each reconnect attempt as "unhandled".
  client.on('error', () => undefined);
  return client;
}

/**
 * A cluster client with the same behaviour as the single-node one. It answers
 * the same commands, so the code takes it as a Redis (BullMQ knows both).
 */
function createCluster(url: string, o: RedisOptions): Redis {
  const u = new URL(url);
  const { enableOfflineQueue, enableReadyCheck, enableAutoPipelining, ...node } = o;
  const cluster = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    ...(enableReadyCheck !== undefined ? { enableReadyCheck } : {}),
    ...(enableAutoPipelining !== undefined ? { enableAutoPipelining } : {}),
    redisOptions: {
      ...node,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  });
  cluster.on('error', () => undefined);
  return cluster as unknown as Redis;
}

/**
 * Resolves once `client` is connected, or after `timeoutMs` whatever its state.
 * A fail-fast client refuses commands until then, so a process that answers
 * its first request right after start would otherwise treat Redis as down.
 */
export async function redisReady(client: Redis, timeoutMs = 2000): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    }
    client.once('ready', done);
  });
}

/**
 * A Lua script run by its SHA (EVALSHA), sent whole only the first time a
 * server does not know it: hot-path scripts cost one small round trip.
 */
export function luaScript(lua: string, numberOfKeys: number) {
  const sha = createHash('sha1').update(lua).digest('hex');
  return async (redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> => {
    try {
      return await redis.evalsha(sha, numberOfKeys, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(lua, numberOfKeys, ...keys, ...args);
    }
  };
}
