import { expect } from 'chai';
import { Queue } from 'bullmq';
import { SESSIONS_QUEUE } from '../../common/queue.js';
import { createRedis, type Redis } from '../../common/redis.js';
import { agentBody, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { stack } from '../support/env.js';
import { batchDone, expectExactlyOneDispatchEach } from '../support/sessions.js';

describe('session batches', () => {
  let api: TestApi;
  let redis: Redis;
  let queue: Queue;
  const jobCount = async () => Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0);

  beforeEach(async () => {
    api = await startTestApi();
    redis = createRedis(stack.REDIS_URL);
    queue = new Queue(SESSIONS_QUEUE, { connection: redis, prefix: api.env.QUEUE_PREFIX });
    await api.call('POST', '/api/agents/register', agentBody('b'));
    await api.call('POST', '/api/agents/register', agentBody('c'));
  });
  afterEach(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
    await api.stop();
  });

  it('validates the whole batch first: one bad item is a 400 naming its index, and nothing is queued', async () => {
    const sessions = Array.from({ length: 50 }, () => ({ agentId: 'b' }));
    sessions[17] = { agentId: 'b', roomName: 'no spaces allowed' } as never;
    const res = await api.call('POST', '/api/sessions/batch', { sessions });
    expect(res.status).to.equal(400);
    expect(res.body.errors).to.deep.equal([{ field: 'sessions.17.roomName', message: '1-128 characters of A-Z a-z 0-9 _ . -' }]);

    const unknown = await api.call('POST', '/api/sessions/batch', { sessions: [{ agentId: 'b' }, { agentId: 'zzz' }] });
    expect(unknown.status).to.equal(400);
    expect(unknown.body.errors[0].field).to.equal('sessions.1.agentId');

    expect((await api.call('POST', '/api/sessions/batch', { sessions: [] })).status).to.equal(400);
    expect((await api.call('POST', '/api/sessions/batch', { agentId: 'b', count: 10_001 })).status).to.equal(400);
    expect(await jobCount()).to.equal(0);
  });

  it('takes N identical sessions as {agentId, count}, reports progress per status, and streams it as server-sent events', async () => {
    const res = await api.call('POST', '/api/sessions/batch', { agentId: 'b', count: 25 });
    expect(res.status).to.equal(202);
    expect(res.body.accepted).to.equal(25);
    expect(new Set(res.body.sessionIds).size).to.equal(25);
    const before = await api.call('GET', `/api/batches/${res.body.batchId}`);
    expect(before.body).to.deep.include({ accepted: 25, done: false });
    expect(before.body.counts.queued).to.equal(25);

    const events: { event: string; data: { counts: Record<string, number>; done: boolean } }[] = [];
    const stream = fetch(`${api.url}/api/batches/${res.body.batchId}/events`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } }).then(async (r) => {
      expect(r.headers.get('content-type')).to.match(/^text\/event-stream/);
      const text = await r.text();
      for (const block of text.split('\n\n').filter(Boolean)) {
        const event = /^event: (.+)$/m.exec(block)![1]!;
        events.push({ event, data: JSON.parse(/^data: (.+)$/m.exec(block)![1]!) });
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    const d = await startTestDispatcher(api.env);
    try {
      await stream;
      expect(events[0]!.event).to.equal('progress');
      expect(events.at(-1)!.event).to.equal('done');
      expect(events.at(-1)!.data.counts.dispatched).to.equal(25);
      await expectExactlyOneDispatchEach(api, res.body.sessionIds);
    } finally {
      await d.stop();
    }
  });

  it('cancels what is not dispatched yet', async () => {
    const res = await api.call('POST', '/api/sessions/batch', { sessions: [{ agentId: 'b' }, { agentId: 'c', metadata: { k: 1 } }, { agentId: 'b' }] });
    const cancel = await api.call('DELETE', `/api/batches/${res.body.batchId}`);
    expect(cancel.status).to.equal(200);
    expect(cancel.body.cancelled).to.equal(3);
    const progress = await api.call('GET', `/api/batches/${res.body.batchId}`);
    expect(progress.body.counts.cancelled).to.equal(3);
    expect(progress.body.done).to.equal(true);
    expect(await queue.getJobCounts('waiting')).to.deep.equal({ waiting: 0 });
    expect((await api.call('GET', '/api/batches/bat_000000000000000000000')).status).to.equal(404);
  });

  it('dispatches a batch of 1,000 sessions exactly once each', async function () {
    this.timeout(180_000);
    const d = await startTestDispatcher(api.env);
    try {
      const res = await api.call('POST', '/api/sessions/batch', { agentId: 'b', count: 1000 });
      expect(res.status).to.equal(202);
      const done = await batchDone(api, res.body.batchId);
      expect(done.counts.dispatched).to.equal(1000);
      expect(await expectExactlyOneDispatchEach(api, res.body.sessionIds)).to.equal(1000);
    } finally {
      await d.stop();
    }
  });
});
