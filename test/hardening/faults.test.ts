import { expect } from 'chai';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { OwnMongo } from '../support/mongo-server.js';
import { OwnRedis } from '../support/redis-server.js';
import { expectExactlyOneDispatchEach, until } from '../support/sessions.js';

interface Outcome {
  status: number;
  ms: number;
  sessionId?: string;
}

/** `clients` concurrent loops posting sessions until `stop()`; bounded by `maxMs` whatever happens. */
function load(api: TestApi, agentId: string, clients: number, maxMs: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  const deadline = Date.now() + maxMs;
  const done = Promise.all(
    Array.from({ length: clients }, async () => {
      while (running && Date.now() < deadline) {
        const t = performance.now();
        const r = await api.call('POST', '/api/sessions', { agentId }).catch(() => ({ status: 0, body: {} as { sessionId?: string } }));
        outcomes.push({ status: r.status, ms: performance.now() - t, ...(r.status === 202 ? { sessionId: r.body.sessionId } : {}) });
        await new Promise((res) => setTimeout(res, r.status === 202 ? 5 : 20));
      }
    }),
  );
  return {
    outcomes,
    async stop() {
      running = false;
      await done;
    },
  };
}

describe('faults under load: nothing accepted is lost, nothing is done twice', function () {
  this.timeout(180_000);

  it('when Redis crashes during load (SIGKILL), then the API answers 503 quickly, and recovers by itself when Redis is back, every accepted session kept', async () => {
    // appendfsync always: a crash loses nothing acknowledged (docs/OPERATIONS.md; under everysec up to a second may go).
    const redis = await OwnRedis.start('always');
    const api = await startTestApi({ REDIS_URL: redis.url, API_RATE_LIMIT: '10000000' });
    let dispatcher: RunningDispatcher | undefined;
    try {
      dispatcher = await startTestDispatcher(api.env);
      await api.call('POST', '/api/agents/register', agentBody('r'));
      await api.call('POST', '/api/sessions', { agentId: 'r' }); // warms the config cache
      const l = load(api, 'r', 8, 60_000);
      await until(async () => l.outcomes.filter((o) => o.status === 202).length >= 50, 20_000, 20);
      await redis.down('SIGKILL');
      const downAt = l.outcomes.length;
      await new Promise((r) => setTimeout(r, 3000));
      const duringOutage = l.outcomes.slice(downAt);
      await redis.up();
      await until(async () => l.outcomes.slice(-5).length === 5 && l.outcomes.slice(-5).every((o) => o.status === 202), 30_000, 50);
      await l.stop();

      expect(l.outcomes.map((o) => o.status).filter((s) => s !== 202 && s !== 503)).to.deep.equal([]);
      expect(duringOutage.filter((o) => o.status === 503).length).to.be.greaterThan(5);
      // A liveness bound, not a benchmark: no request hangs while Redis is away.
      expect(Math.max(...l.outcomes.map((o) => o.ms))).to.be.lessThan(10_000);

      const accepted = l.outcomes.filter((o) => o.sessionId).map((o) => o.sessionId!);
      await until(async () => {
        const views = await Promise.all(accepted.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body.status));
        return views.every((s) => s === 'dispatched');
      }, 90_000, 500);
      expect(await expectExactlyOneDispatchEach(api, accepted)).to.equal(accepted.length);
    } finally {
      await dispatcher?.stop().catch(() => undefined);
      await api.stop().catch(() => undefined);
      await redis.destroy();
    }
  });

  it('when MongoDB stops during load, then sessions are still accepted from cached configs and recorded once it is back', async () => {
    const mongo = await OwnMongo.start();
    const api = await startTestApi({ MONGODB_URI: mongo.uri, API_RATE_LIMIT: '10000000' });
    let dispatcher: RunningDispatcher | undefined;
    try {
      dispatcher = await startTestDispatcher(api.env);
      await api.call('POST', '/api/agents/register', agentBody('m'));
      await api.call('POST', '/api/sessions', { agentId: 'm' });
      const l = load(api, 'm', 2, 60_000);
      await until(async () => l.outcomes.filter((o) => o.status === 202).length >= 20, 20_000, 20);
      await mongo.down();
      const downAt = l.outcomes.length;
      await new Promise((r) => setTimeout(r, 3000));
      const duringOutage = l.outcomes.slice(downAt);
      // 202 means "in Redis": the queue takes sessions while MongoDB is away.
      expect(duringOutage.filter((o) => o.status === 202).length).to.be.greaterThan(5);
      const write = await api.call('POST', '/api/agents/register', agentBody('m', { name: 'changed' }));
      expect(write.status).to.equal(503);
      await mongo.up();
      await new Promise((r) => setTimeout(r, 1000));
      await l.stop();

      expect(l.outcomes.map((o) => o.status).filter((s) => s !== 202 && s !== 503)).to.deep.equal([]);
      const accepted = l.outcomes.filter((o) => o.sessionId).map((o) => o.sessionId!);
      let statuses: Record<string, number> = {};
      await until(async () => {
        const views = await Promise.all(accepted.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body));
        statuses = {};
        for (const v of views) statuses[`${v.status}${v.failureReason ? `:${v.failureReason}` : ''}`] = (statuses[v.status] ?? 0) + 1;
        return views.every((v) => v.status === 'dispatched');
      }, 60_000, 500).catch((err) => {
        throw new Error(`${(err as Error).message}; statuses: ${JSON.stringify(statuses)}`);
      });
      expect(await expectExactlyOneDispatchEach(api, accepted)).to.equal(accepted.length);
    } finally {
      await dispatcher?.stop().catch(() => undefined);
      await api.stop().catch(() => undefined);
      await mongo.destroy();
    }
  });
});
