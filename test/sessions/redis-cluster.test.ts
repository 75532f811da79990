import { expect } from 'chai';
import { SIGNATURE_HEADER, verifySignature } from '../../common/callbacks.js';
import { livekitClients } from '../../common/livekit.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { closeServer, listenLocal, readBody } from '../support/fakes/http.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { uniqueName } from '../support/env.js';
import { OwnRedisCluster } from '../support/redis-cluster.js';
import { batchDone, expectExactlyOneDispatchEach, until } from '../support/sessions.js';

describe('the session pipeline on a three-master Redis Cluster (QUEUE_PREFIX with a hash tag)', function () {
  this.timeout(180_000);
  let cluster: OwnRedisCluster;
  let api: TestApi;
  let dispatcher: RunningDispatcher;
  let prefix: string;
  let owner: number;

  before(async function () {
    this.timeout(90_000);
    cluster = await OwnRedisCluster.start();
    prefix = `{${uniqueName('c')}}`;
    owner = await cluster.ownerOf(`${prefix}:x`);
    // Named by a node that does not serve the prefix's slot: the clients must follow the cluster's redirects.
    const seed = cluster.ports.find((p) => p !== owner)!;
    api = await startTestApi({ REDIS_URL: cluster.urlVia(seed), QUEUE_PREFIX: prefix });
    dispatcher = await startTestDispatcher(api.env);
    expect((await api.call('POST', '/api/agents/register', agentBody('rc'))).status).to.equal(201);
  });
  after(async function () {
    this.timeout(60_000);
    await dispatcher?.stop();
    await api?.stop();
    await cluster?.destroy();
  });

  const view = async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body;

  it('one session: accepted, dispatched exactly once, readable', async () => {
    const s = (await api.call('POST', '/api/sessions', { agentId: 'rc' })).body;
    await until(async () => (await view(s.sessionId)).status === 'dispatched', 30_000, 100);
    expect(await expectExactlyOneDispatchEach(api, [s.sessionId])).to.equal(1);
    expect((await view(s.sessionId)).transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched']);
  });

  it('a batch of 200: every session dispatched exactly once', async () => {
    const b = (await api.call('POST', '/api/sessions/batch', { agentId: 'rc', count: 200 })).body;
    const done = await batchDone(api, b.batchId, 120_000);
    expect(done.counts.dispatched).to.equal(200);
    expect(await expectExactlyOneDispatchEach(api, b.sessionIds)).to.equal(200);
  });

  it('cancels: a queued (scheduled) session is cancelled and never dispatched; a dispatched one ends and its room closes', async () => {
    const later = (await api.call('POST', '/api/sessions', { agentId: 'rc', scheduledAt: new Date(Date.now() + 60_000).toISOString() })).body;
    const cancelled = await api.call('DELETE', `/api/sessions/${later.sessionId}`);
    expect(cancelled.status).to.equal(200);
    expect(cancelled.body.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'cancelled']);

    const now = (await api.call('POST', '/api/sessions', { agentId: 'rc' })).body;
    await until(async () => (await view(now.sessionId)).status === 'dispatched', 30_000, 100);
    const ended = await api.call('DELETE', `/api/sessions/${now.sessionId}`);
    expect(ended.status).to.equal(200);
    expect(ended.body.status).to.equal('ended');
    const { rooms } = livekitClients(api.env as never);
    expect(await rooms.listRooms([now.roomName, later.roomName])).to.deep.equal([]);
    expect((await view(later.sessionId)).status).to.equal('cancelled');
  });

  it('caps: with maxConcurrentSessions 1, a second session waits until the first is over, then goes', async () => {
    expect((await api.call('POST', '/api/agents/register', agentBody('rc-capped', { maxConcurrentSessions: 1 }))).status).to.equal(201);
    const first = (await api.call('POST', '/api/sessions', { agentId: 'rc-capped' })).body;
    await until(async () => (await view(first.sessionId)).status === 'dispatched', 30_000, 100);
    const second = (await api.call('POST', '/api/sessions', { agentId: 'rc-capped' })).body;
    // Held back for 2 s while the first runs.
    const heldUntil = Date.now() + 2000;
    while (Date.now() < heldUntil) {
      expect((await view(second.sessionId)).status).to.equal('queued');
      await new Promise((r) => setTimeout(r, 200));
    }
    await api.call('DELETE', `/api/sessions/${first.sessionId}`);
    await until(async () => (await view(second.sessionId)).status === 'dispatched', 30_000, 100);
    expect(await expectExactlyOneDispatchEach(api, [second.sessionId])).to.equal(1);
  });

  it('callbacks: every status change is POSTed, signed with CALLBACK_SECRET', async () => {
    const received: { status: string; sessionId: string }[] = [];
    let badSignatures = 0;
    const receiver = await listenLocal((req, res) => {
      void readBody(req).then((b) => {
        if (!verifySignature(api.env.CALLBACK_SECRET ?? 'dev-callback-secret-0123456789', b.toString(), String(req.headers[SIGNATURE_HEADER]))) badSignatures++;
        received.push(JSON.parse(b.toString()));
        res.writeHead(204).end();
      });
    });
    try {
      const s = (await api.call('POST', '/api/sessions', { agentId: 'rc', callbackUrl: `http://127.0.0.1:${receiver.port}/hooks` })).body;
      await until(async () => (await view(s.sessionId)).status === 'dispatched', 30_000, 100);
      await api.call('DELETE', `/api/sessions/${s.sessionId}`);
      await until(async () => received.some((e) => e.sessionId === s.sessionId && e.status === 'ended'), 30_000, 100);
      expect(received.filter((e) => e.sessionId === s.sessionId).map((e) => e.status)).to.include.members(['queued', 'dispatched', 'ended']);
      expect(badSignatures).to.equal(0);
    } finally {
      await closeServer(receiver.server);
    }
  });

  it('every key of the runtime lives in the prefix\'s slot, on the one master that serves it', async () => {
    for (const port of cluster.ports) {
      const keys = (await cluster.cli(port, '--scan', '--pattern', `${prefix}*`)).split('\n').filter(Boolean);
      if (port === owner) expect(keys.length, 'keys on the owner').to.be.above(10);
      else expect(keys, `keys on ${port}`).to.deep.equal([]);
      // Nothing of ours outside the prefix either.
      expect(Number(await cluster.cli(port, 'DBSIZE'))).to.equal(keys.length);
    }
  });
});
