import { Queue } from 'bullmq';
import { SESSIONS_QUEUE } from '../../common/queue.js';
import { connectMongo } from '../../common/mongo.js';
import { createRedis, type Redis } from '../../common/redis.js';
import { stackEnv } from '../../tools/lib/services.js';
import { mongoUri, uniqueName as testUniqueName } from '../../test/support/env.js';

export const BENCH_API_KEY = 'bench-api-key-0123456789';

/** The local stack's settings (REDIS_URL, MONGODB_URI, LIVEKIT_*), from the environment or the defaults. */
export const stack = stackEnv();

/** A name no other run uses: its own Redis prefix, database and agent name. */
export const uniqueName = (tag: string): string => testUniqueName(`bench-${tag}`);

export { mongoUri };

/** Settings of an isolated API (and dispatcher) instance: own prefix, database and agent name, loopback only. */
export function isolatedEnv(tag: string, overrides: Record<string, string> = {}): Record<string, string> {
  const name = uniqueName(tag);
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    API_KEYS: BENCH_API_KEY,
    REDIS_URL: stack.REDIS_URL,
    MONGODB_URI: mongoUri(name),
    QUEUE_PREFIX: name,
    AGENT_NAME: name,
    LIVEKIT_URL: stack.LIVEKIT_URL,
    LIVEKIT_API_KEY: stack.LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET: stack.LIVEKIT_API_SECRET,
    // The per-key rate limit (default 2,000 per second) would cap the throughput figures at its budget;
    // raised out of reach, the limiter still runs (and costs its Redis round trip) on every request.
    API_RATE_LIMIT: '10000000',
    // A dispatcher started on these settings serves /metrics on a free loopback port, never a fixed one.
    DISPATCHER_HOST: '127.0.0.1',
    DISPATCHER_METRICS_PORT: '0',
    ...overrides,
  };
}

/** A valid AgentConfig body: the tests' own. */
export { agentBody } from '../../test/support/api.js';

export interface Reply {
  status: number;
  body: any;
}

/** One authenticated JSON call; throws unless the status is `expect` (when given). */
export async function call(baseUrl: string, method: string, path: string, body?: unknown, expect?: number): Promise<Reply> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${BENCH_API_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const parsed: unknown = text ? JSON.parse(text) : undefined;
  if (expect !== undefined && res.status !== expect) {
    throw new Error(`${method} ${path}: expected ${expect}, got ${res.status} ${text.slice(0, 300)}`);
  }
  return { status: res.status, body: parsed };
}

/** One `POST /api/sessions` `{"agentId":"bench"}`, as the load benchmarks send it; network errors and timeouts throw. */
export async function requestSession(apiUrl: string, timeoutMs?: number): Promise<{ status: number; body: { sessionId?: string; roomName?: string } }> {
  const res = await fetch(`${apiUrl}/api/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${BENCH_API_KEY}`, 'content-type': 'application/json' },
    body: '{"agentId":"bench"}',
    ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
  });
  return { status: res.status, body: (await res.json()) as { sessionId?: string; roomName?: string } };
}

/** A connection of the product's kind, once it is ready (fail-fast ones refuse commands before that). */
export async function readyRedis(url: string, kind: 'blocking' | 'fail-fast' = 'fail-fast'): Promise<Redis> {
  const r = createRedis(url, kind);
  r.on('error', () => undefined);
  if (r.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis at ${url} not ready`)), 5000);
      r.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return r;
}

/** Deletes every Redis key under `prefix:` (SCAN, never KEYS). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await redis.del(...keys);
  } while (cursor !== '0');
  return n;
}

/** Empties the sessions queue under `prefix`. */
export async function obliterateSessions(redis: Redis, prefix: string): Promise<void> {
  const q = new Queue(SESSIONS_QUEUE, { connection: redis, prefix });
  try {
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
}

/** Removes everything an isolated env left: its Redis keys and its database. */
export async function dropEnv(env: Record<string, string>): Promise<void> {
  const redis = await readyRedis(env.REDIS_URL!);
  try {
    await deletePrefix(redis, env.QUEUE_PREFIX!);
  } finally {
    redis.disconnect();
  }
  const conn = await connectMongo(env.MONGODB_URI!);
  try {
    await conn.dropDatabase();
  } finally {
    await conn.close();
  }
}
