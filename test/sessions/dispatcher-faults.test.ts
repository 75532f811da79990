import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { livekitClients } from '../../common/livekit.js';
import { sessionsQueue } from '../../common/queue.js';
import { createRedis } from '../../common/redis.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { spawnDispatcher, startTestDispatcher } from '../support/dispatcher.js';
import { HoldingProxy } from '../support/holding-proxy.js';
import { OwnLivekit } from '../support/livekit-server.js';
import { batchDone, expectExactlyOneDispatchEach, until } from '../support/sessions.js';

async function kill(child: ChildProcess, signal: NodeJS.Signals) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function dispatchedCount(api: TestApi, batchId: string): Promise<number> {
  return (await api.call('GET', `/api/batches/${batchId}`)).body.counts.dispatched as number;
}

describe('dispatcher faults: every session dispatched exactly once', function () {
  this.timeout(240_000);
  let api: TestApi;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    api = await startTestApi();
    await api.call('POST', '/api/agents/register', agentBody('f'));
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => kill(c, 'SIGKILL')));
    await api.stop();
  });

  it('when the dispatcher is SIGKILLed mid-batch and started again, then no session is lost and none is dispatched twice', async () => {
    const first = await spawnDispatcher(api.env, { DISPATCH_CONCURRENCY: '8' });
    children.push(first);
    const res = await api.call('POST', '/api/sessions/batch', { agentId: 'f', count: 400 });
    await until(async () => (await dispatchedCount(api, res.body.batchId)) >= 60, 60_000, 20);
    await kill(first, 'SIGKILL');
    const atKill = await dispatchedCount(api, res.body.batchId);
    expect(atKill).to.be.lessThan(400);

    children.push(await spawnDispatcher(api.env));
    const done = await batchDone(api, res.body.batchId);
    expect(done.counts.dispatched).to.equal(400);
    expect(await expectExactlyOneDispatchEach(api, res.body.sessionIds)).to.equal(400);
  });

  it('when a malformed job is in the queue, then it fails for good naming its bad fields, and the dispatcher goes on with the next session', async () => {
    const redis = createRedis(api.env.REDIS_URL!);
    const queue = sessionsQueue(redis, api.env.QUEUE_PREFIX!);
    const d = await startTestDispatcher(api.env);
    try {
      const bad = await queue.add('session', { sessionId: 'not-a-session', agentId: 'f', roomName: 'no room!', requestedAt: 'yesterday' } as never, { attempts: 5 });
      const failed = await until(async () => ((await bad.isFailed()) ? await queue.getJob(bad.id!) : undefined), 10_000, 50);
      expect(failed!.attemptsMade, 'not retried').to.equal(1);
      expect(failed!.failedReason).to.match(/^malformed session job: /);
      for (const field of ['sessionId', 'roomName', 'participantIdentity', 'requestedAt']) expect(failed!.failedReason).to.include(`${field}:`);
      const ok = await api.call('POST', '/api/sessions', { agentId: 'f' });
      await until(async () => (await api.call('GET', `/api/sessions/${ok.body.sessionId}`)).body.status === 'dispatched', 10_000, 50);
      expect(await expectExactlyOneDispatchEach(api, [ok.body.sessionId])).to.equal(1);
    } finally {
      await d.stop();
      await queue.close();
      redis.disconnect();
    }
  });

  it('when two dispatcher processes share the queue, then each session is dispatched exactly once', async () => {
    children.push(await spawnDispatcher(api.env), await spawnDispatcher(api.env));
    const res = await api.call('POST', '/api/sessions/batch', { agentId: 'f', count: 400 });
    const done = await batchDone(api, res.body.batchId);
    expect(done.counts.dispatched).to.equal(400);
    expect(await expectExactlyOneDispatchEach(api, res.body.sessionIds)).to.equal(400);
  });

  it('when SIGTERMed, then the dispatcher finishes its active jobs and exits 0', async () => {
    const child = await spawnDispatcher(api.env);
    children.push(child);
    const res = await api.call('POST', '/api/sessions/batch', { agentId: 'f', count: 100 });
    await until(async () => (await dispatchedCount(api, res.body.batchId)) >= 10, 60_000, 20);
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).to.equal(0);
    const progress = (await api.call('GET', `/api/batches/${res.body.batchId}`)).body;
    expect(progress.counts.dispatching, 'no job left half-done').to.equal(0);
    children.push(await spawnDispatcher(api.env));
    await batchDone(api, res.body.batchId);
    expect(await expectExactlyOneDispatchEach(api, res.body.sessionIds)).to.equal(100);
  });
});

describe('dispatcher while LiveKit is down', function () {
  this.timeout(240_000);

  it('when LiveKit stops for 20 s mid-batch, then every session completes after it is back, once each', async () => {
    const livekit = await OwnLivekit.start();
    const api = await startTestApi({ LIVEKIT_URL: livekit.url });
    const d = await startTestDispatcher(api.env, { DISPATCH_CONCURRENCY: '4', DISPATCH_RATE_MAX: '50' });
    try {
      await api.call('POST', '/api/agents/register', agentBody('lk'));
      const res = await api.call('POST', '/api/sessions/batch', { agentId: 'lk', count: 200 });
      await until(async () => (await dispatchedCount(api, res.body.batchId)) >= 20, 60_000, 20);
      await livekit.down();
      const atStop = await dispatchedCount(api, res.body.batchId);
      await new Promise((r) => setTimeout(r, 20_000));
      expect(await dispatchedCount(api, res.body.batchId), 'nothing dispatched while LiveKit is down').to.be.at.most(atStop + 4);
      // The sessions being tried say so, with their attempts.
      const trying = (await api.call('GET', `/api/sessions?status=dispatching&limit=10`)).body.items as { attempts: number }[];
      expect(trying.length, 'sessions recorded dispatching while LiveKit is down').to.be.greaterThan(0);
      expect(Math.max(...trying.map((t) => t.attempts))).to.be.at.least(2);
      await livekit.up();
      const restartedAt = new Date().toISOString();
      const done = await batchDone(api, res.body.batchId, 120_000);
      expect(done.counts.dispatched).to.equal(200);
      expect(done.counts.failed).to.equal(0);
      type S = { sessionId: string; status: string; dispatchId?: string; transitions: { status: string; at: string }[] };
      const sessions: S[] = await Promise.all(res.body.sessionIds.map(async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body));
      for (const s of sessions) expect(s.transitions.filter((t) => t.status === 'dispatched'), s.sessionId).to.have.length(1);
      const retried = sessions.filter((s) => s.transitions.some((t) => t.status === 'dispatching'));
      expect(retried.length, 'sessions whose first attempts failed').to.be.greaterThan(0);
      for (const s of retried) expect(s.transitions.at(-1)!.status, s.sessionId).to.equal('dispatched');
      // A restarted dev-mode LiveKit forgets its rooms: the ones dispatched after the restart are there to count.
      const afterRestart = sessions.filter((s) => s.transitions.find((t) => t.status === 'dispatched')!.at > restartedAt);
      expect(afterRestart.length).to.be.greaterThan(100);
      await expectExactlyOneDispatchEach(api, afterRestart.map((s) => s.sessionId), livekit.url);
    } finally {
      await d.stop();
      await api.stop();
      await livekit.destroy();
    }
  });
});

/** `p`, or an error naming `what` after `ms`. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('dispatcher SIGKILLed while its LiveKit call is in flight', function () {
  this.timeout(150_000);
  let api: TestApi;
  let proxy: HoldingProxy;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    api = await startTestApi();
    await api.call('POST', '/api/agents/register', agentBody('k'));
    // The dispatchers reach LiveKit's HTTP API through the proxy only; the test and the API go direct.
    proxy = await HoldingProxy.start(api.env.LIVEKIT_URL!);
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => kill(c, 'SIGKILL')));
    await proxy.close();
    await api.stop();
  });

  const CALLS = [
    // The session's own room, created carrying its dispatch (one call).
    { call: 'createRoom', path: '/livekit.RoomService/CreateRoom', namedRoom: false },
    // A room that was open before: the dispatch is added to it (a second call).
    { call: 'createDispatch', path: '/livekit.AgentDispatchService/CreateDispatch', namedRoom: true },
  ] as const;
  // Held before LiveKit saw it (LiveKit acts after the kill), or with LiveKit's answer kept back (it acted, nobody heard).
  for (const { call, path, namedRoom } of CALLS) {
    for (const phase of ['request', 'answer'] as const) {
      it(`${call}, ${phase === 'request' ? 'the request' : "LiveKit's answer"} held: after a new dispatcher, exactly one dispatch in LiveKit, and the record says dispatched once`, async () => {
        const { rooms, dispatch } = livekitClients(api.env as never);
        const roomName = namedRoom ? `desk-${Date.now()}-${phase}` : undefined;
        if (roomName) await rooms.createRoom({ name: roomName, emptyTimeout: 120 });
        const held = proxy.hold(path, phase);
        children.push(await spawnDispatcher(api.env, { LIVEKIT_URL: proxy.url }));
        const s = (await api.call('POST', '/api/sessions', { agentId: 'k', ...(roomName ? { roomName } : {}) })).body;
        await within(30_000, `the ${call} call`, held.arrived);

        await kill(children[0]!, 'SIGKILL');
        // The call lands in LiveKit after (or before) the kill; the dispatcher that made it never learns.
        expect(await held.release(), `LiveKit's answer to ${call}`).to.equal(200);
        const ours = (await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME);
        expect(ours, 'the dispatch the dead dispatcher made').to.have.length(1);
        expect((await api.call('GET', `/api/sessions/${s.sessionId}`)).body.status).not.to.equal('dispatched');

        // The job's lock (15 s) and the dispatch lock (30 s) lapse; the next dispatcher takes the job over.
        children.push(await spawnDispatcher(api.env, { LIVEKIT_URL: proxy.url }));
        const done = await until(async () => {
          const v = (await api.call('GET', `/api/sessions/${s.sessionId}`)).body;
          return v.status === 'dispatched' ? v : undefined;
        }, 75_000, 250);
        expect(await expectExactlyOneDispatchEach(api, [s.sessionId])).to.equal(1);
        expect(done.transitions.filter((t: { status: string }) => t.status === 'dispatched'), 'dispatched in the record').to.have.length(1);
        // The second dispatcher found the dispatch made: it did not make another.
        expect(proxy.requests.filter((r) => r.path.includes('/CreateDispatch')).length, 'CreateDispatch calls').to.equal(call === 'createDispatch' ? 1 : 0);
      });
    }
  }
});
