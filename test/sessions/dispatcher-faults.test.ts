import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { sessionsQueue } from '../../common/queue.js';
import { createRedis } from '../../common/redis.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { spawnDispatcher, startTestDispatcher } from '../support/dispatcher.js';
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
