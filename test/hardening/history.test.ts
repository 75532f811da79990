import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { createLogger } from '../../common/logger.js';
import { connectMongo } from '../../common/mongo.js';
import { createRedis } from '../../common/redis.js';
import { HotRecords, sessionRecords } from '../../common/sessions/index.js';
import { agentBody, mongoUri, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { OwnMongo } from '../support/mongo-server.js';
import { sample } from '../support/prometheus-text.js';
import { stack, uniqueName } from '../support/env.js';
import { OwnRedis } from '../support/redis-server.js';
import { batchDone, expectExactlyOneDispatchEach, until } from '../support/sessions.js';

/** Each session's status as the API reads it now (running sessions come from Redis). */
async function statuses(api: TestApi, ids: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < ids.length; i += 50) {
    const views = await Promise.all(ids.slice(i, i + 50).map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body));
    for (const v of views) {
      const k = String(v.status ?? 'unreadable');
      out[k] = (out[k] ?? 0) + 1;
    }
  }
  return out;
}

describe('session history: running sessions in Redis, history in MongoDB', function () {
  this.timeout(240_000);

  it('when a session moves, then a listing made right after shows the move (lists wait for the history to catch up)', async () => {
    const api = await startTestApi();
    try {
      await api.call('POST', '/api/agents/register', agentBody('l'));
      const created = await Promise.all(Array.from({ length: 30 }, () => api.call('POST', '/api/sessions', { agentId: 'l' })));
      const ids = created.map((c) => c.body.sessionId as string);
      await api.call('DELETE', `/api/sessions/${ids[0]}`);
      // Straight after the 202s and the cancel: the listing, the counts and the dashboard already see them.
      const list = await api.call('GET', '/api/sessions?agentId=l&limit=200');
      expect(list.body.items.map((s: { sessionId: string }) => s.sessionId).sort()).to.deep.equal([...ids].sort());
      expect((await api.call('GET', '/api/sessions?agentId=l&status=cancelled')).body.items.map((s: { sessionId: string }) => s.sessionId)).to.deep.equal([ids[0]]);
      const summary = (await api.call('GET', '/api/metrics')).body;
      expect(summary.sessions.queued).to.equal(29);
      expect(summary.sessions.cancelled).to.equal(1);
    } finally {
      await api.stop();
    }
  });

  it('when a writer that lost its lease writes an older copy after a newer one is in MongoDB, then the newest copy is written again after it', async () => {
    const name = uniqueName('hw');
    const mongo = await connectMongo(mongoUri(name));
    const redis = createRedis(stack.REDIS_URL);
    try {
      const { store, history, callbacks } = await sessionRecords(mongo, redis, name, createLogger('test', 'silent'), name);
      const hot = new HotRecords(redis, name);
      const at = new Date().toISOString();
      await store.createQueued([{ sessionId: 'ses_stale', agentId: 'a', roomName: 'room-stale', participantIdentity: 'u', requestedAt: at }]);
      await history.flush();
      await store.transition('ses_stale', 'dispatched', { attempts: 1, dispatchId: 'AD_1' });
      // A slow writer read the dispatched copy; then the session ended and a second writer wrote that.
      const stale = await hot.unwritten(10);
      expect(stale.map((r) => r.doc.status)).to.deep.equal(['dispatched']);
      await store.transition('ses_stale', 'failed', { failureReason: 'test' });
      expect(await history.flush()).to.equal(1);
      // The slow writer's copy lands last; it is marked unwritten again, and the next write puts the newest copy back.
      await history.write(stale);
      expect((await hot.lag()).sessions, 'sessions marked unwritten').to.equal(1);
      expect(await history.flush()).to.equal(1);
      const doc = await mongo.collection('sessions').findOne({ _id: 'ses_stale' as never });
      expect(doc?.status).to.equal('failed');
      expect(doc?.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched', 'failed']);
      expect((await hot.lag()).sessions).to.equal(0);
      await callbacks.close();
    } finally {
      await mongo.dropDatabase().catch(() => undefined);
      await mongo.close();
      redis.disconnect();
    }
  });

  it('when MongoDB stops for 40 s while a 1,000-session batch dispatches, then every session is dispatched once meanwhile and the history is complete after it is back', async () => {
    const mongo = await OwnMongo.start();
    const api = await startTestApi({ MONGODB_URI: mongo.uri });
    let dispatcher: RunningDispatcher | undefined;
    try {
      dispatcher = await startTestDispatcher(api.env);
      await api.call('POST', '/api/agents/register', agentBody('h'));
      // Scheduled a few seconds ahead, so the queued history is written first and every move happens while MongoDB is away.
      const res = await api.call('POST', '/api/sessions/batch', { agentId: 'h', count: 1000, scheduledAt: new Date(Date.now() + 8000).toISOString() });
      expect(res.status).to.equal(202);
      const ids: string[] = res.body.sessionIds;
      const lag = async () => {
        const text = await (await fetch(`http://127.0.0.1:${dispatcher!.metricsPort}/metrics`)).text();
        return { seconds: sample(text, 'agent_runtime_session_history_lag_seconds')!, unwritten: sample(text, 'agent_runtime_session_history_unwritten')! };
      };
      await until(async () => (await lag()).unwritten === 0, 6000, 50);
      const downAt = Date.now();
      await mongo.down();

      // The hot path never waits on MongoDB: the whole batch is dispatched while it is away (alone in about ten
      // seconds; the full suite on two cores has taken three times that).
      let seen: Record<string, number> = {};
      await until(async () => {
        seen = await statuses(api, ids);
        return seen.dispatched === 1000;
      }, 38_000, 250).catch((err) => {
        throw new Error(`${(err as Error).message}; statuses while MongoDB is down: ${JSON.stringify(seen)}`);
      });
      expect(Date.now() - downAt, 'dispatched before MongoDB came back').to.be.below(40_000);
      // The operator sees the history fall behind while MongoDB is away...
      const during = await lag();
      expect(during.unwritten).to.equal(1000);
      expect(during.seconds).to.be.above(1);
      await sleep(Math.max(0, 40_000 - (Date.now() - downAt)));
      await mongo.up();
      // ...and catch up by itself once it is back.
      await until(async () => (await lag()).unwritten === 0, 30_000, 250);

      expect(await expectExactlyOneDispatchEach(api, ids)).to.equal(1000);
      const done = await batchDone(api, res.body.batchId, 60_000);
      expect(done.counts.dispatched).to.equal(1000);
      // The history itself: every session, in its final state of the moment, with its transitions.
      const conn = await connectMongo(mongo.uri);
      try {
        await until(async () => (await conn.collection('sessions').countDocuments({ batchId: res.body.batchId, status: 'dispatched' })) === 1000, 30_000, 250);
        const one = await conn.collection('sessions').findOne({ _id: ids[500] as never });
        expect(one?.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched']);
      } finally {
        await conn.close();
      }
    } finally {
      await dispatcher?.stop().catch(() => undefined);
      await api.stop().catch(() => undefined);
      await mongo.destroy();
    }
  });

  for (const fsync of ['everysec', 'always'] as const) {
    it(`when Redis (appendfsync ${fsync}) is SIGKILLed mid-batch and restarted from its AOF, then no session is dispatched twice and every accepted one is dispatched`, async () => {
      const redis = await OwnRedis.start(fsync);
      const api = await startTestApi({ REDIS_URL: redis.url });
      let dispatcher: RunningDispatcher | undefined;
      try {
        dispatcher = await startTestDispatcher(api.env, { DISPATCH_CONCURRENCY: '4' });
        await api.call('POST', '/api/agents/register', agentBody('k'));
        const res = await api.call('POST', '/api/sessions/batch', { agentId: 'k', count: 400 });
        expect(res.status).to.equal(202);
        const ids: string[] = res.body.sessionIds;
        // everysec: what was written in the last second before the crash may be lost; the batch itself is older.
        await sleep(1500);
        await until(async () => (await statuses(api, ids)).dispatched! >= 50, 30_000, 50);
        await redis.down('SIGKILL');
        await sleep(500);
        await redis.up();

        let seen: Record<string, number> = {};
        await until(async () => {
          seen = await statuses(api, ids);
          return seen.dispatched === ids.length;
        }, 150_000, 1000).catch((err) => {
          throw new Error(`${(err as Error).message}; statuses after the crash: ${JSON.stringify(seen)}`);
        });
        expect(await expectExactlyOneDispatchEach(api, ids)).to.equal(ids.length);
      } finally {
        await dispatcher?.stop().catch(() => undefined);
        await api.stop().catch(() => undefined);
        await redis.destroy();
      }
    });
  }
});
