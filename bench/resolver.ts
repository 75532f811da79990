/**
 * 1a. Config resolution (issue 3): AgentResolver.resolve latency per tier, and
 * how soon a second resolver sees a PATCH, against raw Redis on the same server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { agentModels, type AgentModels, AgentResolver, configKey, createResolver, type Tier } from '../common/agents/index.js';
import { loadConfig, sharedEnv } from '../common/config.js';
import { connectMongo } from '../common/mongo.js';
import type { Redis } from '../common/redis.js';
import { startChild } from './lib/child.js';
import { agentBody, call, dropEnv, isolatedEnv, readyRedis } from './lib/env.js';
import type { Figure, Section } from './lib/report.js';
import { latency, usSince, type LatencySummary } from './lib/stats.js';

const N_LRU = 20_000;
const N_REDIS = 3_000;
const N_MONGO = 300;
const N_PUBSUB = 300;
const N_PATCH = 100;

type Log = (m: string) => void;

/** Sequential resolves of `ids` in turn; every answer must come from `tier`. */
async function timeResolves(r: AgentResolver, ids: string[], n: number, tier: Tier, before?: (id: string) => Promise<unknown>): Promise<LatencySummary> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = ids[i % ids.length]!;
    if (before) await before(id);
    const t = performance.now();
    const got = await r.resolve(id);
    us.push(usSince(t));
    if (got.tier !== tier) throw new Error(`expected a ${tier} answer, got ${got.tier}`);
  }
  return latency(us);
}

async function timeRawGets(redis: Redis, keys: string[], n: number): Promise<LatencySummary> {
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const v = await redis.get(keys[i % keys.length]!);
    us.push(usSince(t));
    if (!v) throw new Error('raw GET found no config');
  }
  return latency(us);
}

/** PUBLISH to delivery on another connection of the same Redis, in milliseconds. */
async function timePubSub(pub: Redis, sub: Redis, channel: string, n: number): Promise<LatencySummary> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const got = new Promise<void>((resolve) => {
      const on = (ch: string) => {
        if (ch !== channel) return;
        sub.off('message', on);
        resolve();
      };
      sub.on('message', on);
    });
    const t = performance.now();
    await pub.publish(channel, String(i));
    await got;
    ms.push(performance.now() - t);
  }
  return latency(ms);
}

/** PATCH through the API; milliseconds from its response until `watcher` resolves the new version. */
async function timeInvalidation(apiUrl: string, watcher: AgentResolver, agentId: string, n: number, offset: number): Promise<LatencySummary> {
  const ms: number[] = [];
  await watcher.resolve(agentId); // refill: the LRU entry lives CONFIG_LRU_TTL_MS
  for (let i = 0; i < n; i++) {
    const before = await watcher.resolve(agentId);
    if (before.tier !== 'lru') throw new Error(`watcher should hold ${agentId} in its LRU before a PATCH, got ${before.tier}`);
    const res = await call(apiUrl, 'PATCH', `/api/agents/${agentId}`, { instructions: `Be brief. Edit ${offset + i}.` }, 200);
    const t = performance.now();
    const want = res.body.version as number;
    for (;;) {
      const now = await watcher.resolve(agentId);
      if (now.config.version >= want) break;
      if (performance.now() - t > 5000) throw new Error('the watcher did not see the PATCH within 5 s');
      await sleep(1);
    }
    ms.push(performance.now() - t);
  }
  return latency(ms);
}

export async function benchResolver(runs: number, log: Log): Promise<Section> {
  const env = isolatedEnv('res');
  const prefix = env.QUEUE_PREFIX!;
  const api = await startChild('api.ts', env);
  const subscribers: Redis[] = [];
  const closers: (() => void)[] = [];
  let redis: Redis | undefined;
  let conn: Awaited<ReturnType<typeof connectMongo>> | undefined;
  try {
    for (const id of ['bench-a', 'bench-b', 'bench-inv']) await call(api.url, 'POST', '/api/agents/register', agentBody(id), 201);
    redis = await readyRedis(env.REDIS_URL!);
    conn = await connectMongo(env.MONGODB_URI!);
    const models: AgentModels = await agentModels(conn);
    const resolver = async (opts: { lruMax?: number }) => {
      const sub = await readyRedis(env.REDIS_URL!, 'blocking');
      subscribers.push(sub);
      const r = new AgentResolver({ redis: redis!, subscriber: sub, models, prefix, ...opts });
      await r.start();
      return r;
    };
    // LRU hits: one agent, always in the process.
    const lruResolver = await resolver({});
    await lruResolver.resolve('bench-a');
    // Redis hits / MongoDB misses: an LRU of one entry, two agents in turn, so every resolve leaves the process.
    const redisResolver = await resolver({ lruMax: 1 });
    const mongoResolver = await resolver({ lruMax: 1 });
    // The second resolver of the invalidation test, as a service builds it (own subscriber connection).
    const watcherHandle = await createResolver(loadConfig(sharedEnv, env), redis, models);
    closers.push(watcherHandle.close);
    const watcher = watcherHandle.resolver;
    const pubsubSub = await readyRedis(env.REDIS_URL!, 'blocking');
    subscribers.push(pubsubSub);
    const pubsubChannel = `${prefix}:bench-pubsub`;
    await pubsubSub.subscribe(pubsubChannel);

    const ids = ['bench-a', 'bench-b'];
    const keys = ids.map((id) => configKey(prefix, id));
    const res = { raw: [] as LatencySummary[], lru: [] as LatencySummary[], redis: [] as LatencySummary[], mongo: [] as LatencySummary[], pubsub: [] as LatencySummary[], inval: [] as LatencySummary[] };
    for (let run = -1; run < runs; run++) {
      const raw = await timeRawGets(redis, keys, N_REDIS);
      await lruResolver.resolve('bench-a'); // refill: the LRU entry lives CONFIG_LRU_TTL_MS
      const lru = await timeResolves(lruResolver, ['bench-a'], N_LRU, 'lru');
      const viaRedis = await timeResolves(redisResolver, ids, N_REDIS, 'redis');
      const viaMongo = await timeResolves(mongoResolver, ids, N_MONGO, 'mongo', (id) => redis!.del(configKey(prefix, id)));
      const pubsub = await timePubSub(redis, pubsubSub, pubsubChannel, N_PUBSUB);
      const inval = await timeInvalidation(api.url, watcher, 'bench-inv', N_PATCH, (run + 1) * N_PATCH);
      const line = `raw GET p99 ${raw.p99.toFixed(0)} µs, LRU p99 ${lru.p99.toFixed(1)} µs, Redis p99 ${viaRedis.p99.toFixed(0)} µs, MongoDB p99 ${viaMongo.p99.toFixed(0)} µs, invalidation p99 ${inval.p99.toFixed(2)} ms`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      res.raw.push(raw);
      res.lru.push(lru);
      res.redis.push(viaRedis);
      res.mongo.push(viaMongo);
      res.pubsub.push(pubsub);
      res.inval.push(inval);
    }

    const p = (xs: LatencySummary[], k: 'p50' | 'p99') => xs.map((x) => x[k]);
    const rawBase = (k: 'p50' | 'p99') => ({ name: `raw ioredis GET ${k}`, unit: 'µs', runs: p(res.raw, k) });
    const figures: Figure[] = [
      { name: 'LRU hit p50', unit: 'µs', runs: p(res.lru, 'p50'), baseline: rawBase('p50') },
      { name: 'LRU hit p99', unit: 'µs', runs: p(res.lru, 'p99'), baseline: rawBase('p99'), target: { on: 'value', op: '<=', limit: 50 } },
      { name: 'Redis hit p50', unit: 'µs', runs: p(res.redis, 'p50'), baseline: rawBase('p50') },
      { name: 'Redis hit p99', unit: 'µs', runs: p(res.redis, 'p99'), baseline: rawBase('p99'), target: { on: 'value', op: '<=', limit: 1000 } },
      { name: 'MongoDB miss p50', unit: 'µs', runs: p(res.mongo, 'p50'), baseline: rawBase('p50') },
      { name: 'MongoDB miss p99', unit: 'µs', runs: p(res.mongo, 'p99'), baseline: rawBase('p99') },
      {
        name: 'Invalidation: PATCH response → second resolver sees new version, p50',
        unit: 'ms',
        runs: p(res.inval, 'p50'),
        baseline: { name: 'raw PUBLISH → message p50', unit: 'ms', runs: p(res.pubsub, 'p50') },
      },
      {
        name: 'Invalidation: PATCH response → second resolver sees new version, p99',
        unit: 'ms',
        runs: p(res.inval, 'p99'),
        baseline: { name: 'raw PUBLISH → message p99', unit: 'ms', runs: p(res.pubsub, 'p99') },
        target: { on: 'value', op: '<=', limit: 100 },
      },
    ];
    return {
      title: '1a. Config resolution (issue 3)',
      method: [
        `\`AgentResolver.resolve\` called sequentially in the bench process against a real API's Redis and database (its own prefix and database), timed with \`performance.now()\`. Per run: ${N_LRU.toLocaleString('en-US')} LRU hits (one agent held in the process); ${N_REDIS.toLocaleString('en-US')} Redis hits (a resolver constructed with \`lruMax: 1\` resolving two agents in turn, so every call leaves the process; each answer is checked to be tier \`redis\`); ${N_MONGO} MongoDB misses (the same, with the agent's Redis key \`configKey(prefix, id)\` deleted before each call, untimed; each answer is checked to be tier \`mongo\` and includes the compare-and-set write back to Redis). Baseline: ${N_REDIS.toLocaleString('en-US')} raw \`GET\`s of the same keys on the same ioredis connection.`,
        `Invalidation: ${N_PATCH} \`PATCH /api/agents/:id\` per run through the API (its own process); a second resolver built by \`createResolver\` (its own subscriber connection) holds the agent in its LRU before each PATCH; the time runs from the PATCH response until that resolver's \`resolve\` returns the new version (polled every 1 ms). Baseline: ${N_PUBSUB} raw \`PUBLISH\`es per run, timed until the message arrives on another connection.`,
        'p50/p99 are nearest-rank percentiles of one run; the table gives the median of those over the runs.',
      ],
      figures,
    };
  } finally {
    closers.forEach((c) => c());
    subscribers.forEach((s) => s.disconnect());
    redis?.disconnect();
    await conn?.close();
    await api.stop();
    await dropEnv(env);
  }
}
