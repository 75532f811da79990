import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { expect } from 'chai';
import { agentModels, AgentResolver, configKey, VERSION_REDIS_TTL, versionKey } from '../../common/agents/index.js';
import { AgentNotFoundError, AgentVersionNotFoundError, UnavailableError } from '../../common/errors.js';
import { connectMongo, type Connection } from '../../common/mongo.js';
import { createRedis, type Redis } from '../../common/redis.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { OwnMongo } from '../support/mongo-server.js';
import { stack } from '../support/env.js';

async function until<T>(fn: () => Promise<T | undefined>, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('agent config resolution: LRU, then Redis, then MongoDB', () => {
  let api: TestApi;
  let conn: Connection;
  let redis: Redis;
  const resolvers: AgentResolver[] = [];
  const subscribers: Redis[] = [];

  async function newResolver(opts: { negativeTtl?: number } = {}): Promise<AgentResolver> {
    const sub = createRedis(stack.REDIS_URL, 'blocking');
    subscribers.push(sub);
    const r = new AgentResolver({ redis, subscriber: sub, models: await agentModels(conn), prefix: api.env.QUEUE_PREFIX!, ...opts });
    await r.start();
    resolvers.push(r);
    return r;
  }

  before(async () => {
    api = await startTestApi();
    conn = await connectMongo(api.env.MONGODB_URI!);
    redis = createRedis(stack.REDIS_URL);
  });
  after(async () => {
    subscribers.forEach((s) => s.disconnect());
    redis.disconnect();
    await conn.dropDatabase();
    await conn.close();
    await api.stop();
  });

  it('answers from MongoDB once, then from Redis in another process, then from its own LRU', async () => {
    await api.call('POST', '/api/agents/register', agentBody('tiers'));
    await redis.del(configKey(api.env.QUEUE_PREFIX!, 'tiers'));
    const first = await newResolver();
    expect((await first.resolve('tiers')).tier).to.equal('mongo');
    expect((await first.resolve('tiers')).tier).to.equal('lru');
    const second = await newResolver();
    const viaRedis = await second.resolve('tiers');
    expect(viaRedis.tier).to.equal('redis');
    expect(viaRedis.config).to.include({ id: 'tiers', version: 1, name: 'Agent tiers' });
    expect(second.mongoReads).to.equal(0);
  });

  it('makes one MongoDB read for many concurrent cold resolutions of one agent', async () => {
    await api.call('POST', '/api/agents/register', agentBody('flight'));
    await redis.del(configKey(api.env.QUEUE_PREFIX!, 'flight'));
    const r = await newResolver();
    const all = await Promise.all(Array.from({ length: 200 }, () => r.resolve('flight')));
    expect(all.every((x) => x.config.id === 'flight')).to.equal(true);
    expect(r.mongoReads).to.equal(1);
  });

  it('caches unknown ids so a flood of them reaches MongoDB once, and a later registration is seen at once', async () => {
    const r = await newResolver({ negativeTtl: 30 });
    const flood = await Promise.allSettled(Array.from({ length: 100 }, () => r.resolve('nobody')));
    expect(flood.every((x) => x.status === 'rejected' && x.reason instanceof AgentNotFoundError)).to.equal(true);
    for (let i = 0; i < 20; i++) await r.resolve('nobody').catch(() => undefined);
    const other = await newResolver();
    await other.resolve('nobody').catch(() => undefined);
    expect(r.mongoReads + other.mongoReads).to.equal(1);

    await api.call('POST', '/api/agents/register', agentBody('nobody'));
    const seen = await until(() => r.resolve('nobody').then((x) => x.config.version, () => undefined));
    expect(seen).to.equal(1);
  });

  describe('a pinned version', () => {
    const instructions = async (r: AgentResolver, version: number) => {
      const { config, tier } = await r.resolveVersion('pinned', version);
      expect(config).to.include({ id: 'pinned', version });
      return { instructions: config.instructions, tier };
    };

    it('answers from MongoDB once, then from Redis in another process, then from its own LRU, and later writes change none of them', async () => {
      await api.call('POST', '/api/agents/register', agentBody('pinned', { instructions: 'first' }));
      await api.call('PATCH', '/api/agents/pinned', { instructions: 'second' });
      const prefix = api.env.QUEUE_PREFIX!;

      const first = await newResolver();
      expect(await instructions(first, 1)).to.deep.equal({ instructions: 'first', tier: 'mongo' });
      expect(await instructions(first, 1)).to.deep.equal({ instructions: 'first', tier: 'lru' });
      expect(await redis.ttl(versionKey(prefix, 'pinned', 1))).to.be.within(VERSION_REDIS_TTL - 60, VERSION_REDIS_TTL);
      const second = await newResolver();
      expect(await instructions(second, 1)).to.deep.equal({ instructions: 'first', tier: 'redis' });
      // The current version is the agent's own entry: no read of its version row.
      expect(await instructions(second, 2)).to.deep.equal({ instructions: 'second', tier: 'redis' });
      expect(await instructions(second, 2)).to.deep.equal({ instructions: 'second', tier: 'lru' });
      expect(first.mongoReads).to.equal(1);
      expect(second.mongoReads).to.equal(0);

      // Two more writes, the last a rollback to version 2's config: each resolver hears of them (its
      // current config moves on), and every version still answers with its own config from where it was.
      await api.call('PATCH', '/api/agents/pinned', { instructions: 'third' });
      await api.call('POST', '/api/agents/pinned/rollback', { version: 2 });
      for (const r of [first, second]) await until(() => r.resolve('pinned').then((x) => (x.config.version === 4 ? x : undefined)));
      expect(await instructions(first, 1)).to.deep.equal({ instructions: 'first', tier: 'lru' });
      expect(await instructions(second, 2)).to.deep.equal({ instructions: 'second', tier: 'lru' });
      expect(await instructions(second, 4)).to.deep.equal({ instructions: 'second', tier: 'lru' });
      const third = await newResolver();
      expect(await instructions(third, 1)).to.deep.equal({ instructions: 'first', tier: 'redis' });
      expect(await instructions(third, 3)).to.deep.equal({ instructions: 'third', tier: 'mongo' });
      expect(await instructions(third, 3)).to.deep.equal({ instructions: 'third', tier: 'lru' });
      expect(first.mongoReads + second.mongoReads).to.equal(1); // version 1, once
    });

    it('an unknown version is AgentVersionNotFoundError, cached briefly, and seen once it is written', async () => {
      await api.call('POST', '/api/agents/register', agentBody('later', { instructions: 'first' }));
      const r = await newResolver({ negativeTtl: 30 });
      const flood = await Promise.allSettled(Array.from({ length: 50 }, () => r.resolveVersion('later', 2)));
      expect(flood.every((x) => x.status === 'rejected' && x.reason instanceof AgentVersionNotFoundError && x.reason.version === 2)).to.equal(true);
      await r.resolveVersion('later', 2).catch(() => undefined);
      expect(r.mongoReads).to.equal(1);
      const none = await r.resolveVersion('nobody-at-all', 1).catch((e: unknown) => e);
      expect(none).to.be.instanceOf(AgentVersionNotFoundError);

      await api.call('PATCH', '/api/agents/later', { instructions: 'second' });
      // Within the 30 s it would be known as missing: the change message makes it read again.
      const seen = await until(() => r.resolveVersion('later', 2).then((x) => x.config.instructions, () => undefined));
      expect(seen).to.equal('second');
    });
  });

  it('when an agent changes, then a resolver in another process drops its copy on the change message', async function () {
    await api.call('POST', '/api/agents/register', agentBody('inval'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/resolver-process.ts', api.env.MONGODB_URI!, stack.REDIS_URL, api.env.QUEUE_PREFIX!], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const ask = async (id: string) => {
      child.stdin!.write(`${id}\n`);
      return JSON.parse((await lines.next()).value as string) as { version?: number; tier?: string };
    };
    try {
      expect((await lines.next()).value).to.equal('ready');
      expect(await ask('inval')).to.deep.equal({ version: 1, tier: 'redis' });
      expect(await ask('inval')).to.deep.equal({ version: 1, tier: 'lru' });
      await api.call('PATCH', '/api/agents/inval', { name: 'changed' });
      // The child's LRU copy lives 60 s; only the change message can make it read again.
      const answer = await until(async () => {
        const a = await ask('inval');
        return a.version === 2 ? a : undefined;
      });
      expect(answer).to.deep.equal({ version: 2, tier: 'redis' });
    } finally {
      child.kill();
    }
  });
});

describe('agent config resolution while MongoDB is down', () => {
  let mongo: OwnMongo;
  let api: TestApi;
  let conn: Connection;
  let redis: Redis;
  let sub: Redis;

  before(async function () {
    this.timeout(60_000);
    mongo = await OwnMongo.start();
    api = await startTestApi({ MONGODB_URI: mongo.uri });
    conn = await connectMongo(mongo.uri);
    redis = createRedis(stack.REDIS_URL);
    sub = createRedis(stack.REDIS_URL, 'blocking');
  });
  after(async function () {
    this.timeout(30_000);
    sub.disconnect();
    redis.disconnect();
    await conn.close().catch(() => undefined);
    await api.stop().catch(() => undefined);
    await mongo.destroy();
  });

  it('serves cached configs, answers registry writes and readiness with 503, and recovers by itself', async function () {
    this.timeout(60_000);
    await api.call('POST', '/api/agents/register', agentBody('cached'));
    await api.call('POST', '/api/agents/register', agentBody('lru-only'));
    const resolver = new AgentResolver({ redis, subscriber: sub, models: await agentModels(conn), prefix: api.env.QUEUE_PREFIX!, lruTtlMs: 100 });
    await resolver.start();
    await resolver.resolve('lru-only');
    await redis.del(configKey(api.env.QUEUE_PREFIX!, 'lru-only'));

    await mongo.down();

    expect((await resolver.resolve('cached')).config.id).to.equal('cached'); // from Redis
    await new Promise((r) => setTimeout(r, 150)); // past the LRU TTL: only a stale in-process copy is left
    expect((await resolver.resolve('lru-only')).config.id).to.equal('lru-only');
    let err: unknown;
    try {
      await resolver.resolve('never-seen');
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(UnavailableError);

    const write = await api.call('POST', '/api/agents/register', agentBody('during-outage'));
    expect(write.status).to.equal(503);
    expect(write.headers.get('content-type')).to.match(/problem\+json/);
    expect(write.headers.get('retry-after')).to.be.a('string');
    expect(JSON.stringify(write.body)).not.to.match(/Mongo\w*Error|at .*\.ts/);
    expect((await fetch(`${api.url}/readyz`)).status).to.equal(503);

    await mongo.up();
    const back = await until(async () => {
      const r = await api.call('POST', '/api/agents/register', agentBody('during-outage'));
      return r.status === 201 ? r : undefined;
    }, 30_000);
    expect(back.body.version).to.equal(1);
    expect((await fetch(`${api.url}/readyz`)).status).to.equal(200);
  });
});
