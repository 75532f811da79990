import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import { createRedis, redisReady } from '../../common/redis.js';
import { WORKER_ATTRIBUTE } from '../../common/sessions/index.js';
import { WorkerCapacity } from '../../common/workers/capacity.js';
import { agentBody, type TestApi } from '../support/api.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { batchDone, until } from '../support/sessions.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

describe('agent workers: several share the jobs, and a dead one leaves no session active without an agent', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let api: TestApi;
  let livekit: OwnLivekit;
  const workers: WorkerProcess[] = [];

  before(async function () {
    this.timeout(120_000);
    stack = await startWorkerStack();
    ({ api, livekit } = stack);
    await api.call('POST', '/api/agents/register', agentBody('many', { greeting: 'Hi.' }));
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(workers.map((w) => w.kill()));
    await stack?.stop();
  });

  it('when two production-mode workers run on one host, then each has its own health port and both take jobs from one batch', async () => {
    // Two jobs fill a worker (load = running jobs / WORKER_MAX_JOBS): LiveKit must send the rest to the other.
    // WORKER_HEALTH_PORT is 0 in the test env: any free port, not the agent server's production default.
    const capped = { ...stack.providers, WORKER_MAX_JOBS: '2' };
    workers.push(await spawnWorker(api.env, capped, 'start'), await spawnWorker(api.env, capped, 'start'));
    const ports = workers.map((w) => w.healthPort);
    expect(new Set(ports).size, `health ports ${ports}`).to.equal(2);
    for (const port of ports) expect((await fetch(`http://127.0.0.1:${port}/`)).status).to.equal(200);
    // Spaced by more than the agent server's 2.5 s load report, as a rate-limited dispatcher would.
    const at = new Date(Date.now() + 1000).getTime();
    const sessions = Array.from({ length: 4 }, (_, i) => ({ agentId: 'many', scheduledAt: new Date(at + i * 3000).toISOString() }));
    const batch = (await api.call('POST', '/api/sessions/batch', { sessions })).body as { batchId: string; sessionIds: string[] };
    await batchDone(api, batch.batchId, 60_000);
    const { rooms } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    const roomNames = await Promise.all(batch.sessionIds.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body.roomName as string));
    const workerIds = await until(async () => {
      const ids = await Promise.all(
        roomNames.map(async (room) => (await rooms.listParticipants(room)).map((p) => p.attributes[WORKER_ATTRIBUTE]).find(Boolean)),
      );
      return ids.every(Boolean) ? ids : undefined;
    }, 90_000, 500);
    expect(new Set(workerIds).size).to.equal(2);
    await until(async () => {
      const statuses = await Promise.all(batch.sessionIds.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body.status));
      return statuses.every((s) => s === 'active');
    }, 60_000, 500);
  });

  it('when a worker holding several sessions is SIGKILLed (no user in its rooms), then every one it held ends agent_lost within 10 s, and the other worker\'s stay active with their agents', async () => {
    const victim = workers.shift()!;
    const { rooms } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    const list = (await api.call('GET', '/api/sessions?agentId=many&status=active&limit=50')).body.items as { sessionId: string }[];
    const views = await Promise.all(list.map(async (s) => (await api.call('GET', `/api/sessions/${s.sessionId}`)).body));
    // Which worker holds each session, by the worker attribute of the agent in its room; the record agrees.
    const byWorker = new Map<string, string[]>();
    for (const v of views) {
      const agents = (await rooms.listParticipants(v.roomName)).filter((p) => p.attributes[WORKER_ATTRIBUTE]);
      expect(agents, `agents in ${v.roomName}`).to.have.length(1);
      const workerId = agents[0]!.attributes[WORKER_ATTRIBUTE]!;
      expect(v.placement.workerId, v.sessionId).to.equal(workerId);
      byWorker.set(workerId, [...(byWorker.get(workerId) ?? []), v.sessionId]);
    }
    // The victim's id: the worker whose process is the victim's, from its heartbeat.
    const redis = createRedis(api.env.REDIS_URL!);
    await redisReady(redis);
    const capacity = new WorkerCapacity(redis, api.env.QUEUE_PREFIX!, api.env.AGENT_NAME!);
    const victimId = (await capacity.summary()).workers.find((w) => w.pid === victim.child.pid)!.id;
    redis.disconnect();
    expect(byWorker.size, 'sessions on both workers').to.equal(2);
    expect(byWorker.has(victimId), 'sessions on the victim').to.equal(true);
    const lost = byWorker.get(victimId)!;
    const kept = [...byWorker].filter(([id]) => id !== victimId).flatMap(([, ids]) => ids);
    // Two slots each and four sessions: each worker holds two.
    expect(lost, 'the victim\'s sessions').to.have.length(2);
    expect(kept, 'the survivor\'s sessions').to.have.length(2);

    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    // Nobody is in these rooms: a dead worker's sessions have no one to recover them for (with a user, one is: test/worker/placement.test.ts).
    let seen: string[] = [];
    const ended = await until(async () => {
      const now = await Promise.all(lost.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body));
      seen = now.map((v) => `${v.status}${v.failureReason ? `:${v.failureReason}` : ''}`);
      return now.every((v) => v.status === 'ended') ? now : undefined;
    }, 20_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}; the victim's sessions: ${seen.join(', ')}`);
    });
    expect(Date.now() - killedAt, 'killed → every session it held ended (ms)').to.be.below(10_000);
    for (const v of ended) {
      expect(v.failureReason, v.sessionId).to.equal('agent_lost');
      expect(v.placement.workerId, 'ended as the victim\'s').to.equal(victimId);
    }
    // The survivor's, watched for 5 s after: never anything but active, their agents in their rooms.
    const watchUntil = Date.now() + 5_000;
    while (Date.now() < watchUntil) {
      for (const id of kept) expect((await api.call('GET', `/api/sessions/${id}`)).body.status, `the survivor's ${id}`).to.equal('active');
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const v of views.filter((x) => kept.includes(x.sessionId))) {
      const agents = (await rooms.listParticipants(v.roomName)).map((p) => p.attributes[WORKER_ATTRIBUTE]).filter(Boolean);
      expect(agents, `the agent in ${v.roomName}`).to.deep.equal([v.placement.workerId]);
    }
  });
});
