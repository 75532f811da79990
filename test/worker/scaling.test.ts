import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import { WORKER_ATTRIBUTE } from '../../common/sessions/attributes.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { startFakeDeepgram, type FakeDeepgram } from '../support/fakes/deepgram.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakes/openai.js';
import { OwnLivekit } from '../support/livekit-server.js';
import { batchDone, until } from '../support/sessions.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';

describe('agent workers: several share the jobs, and a dead one leaves no session active', function () {
  this.timeout(240_000);
  let livekit: OwnLivekit;
  let api: TestApi;
  let dispatcher: RunningDispatcher;
  let openai: FakeOpenAI;
  let deepgram: FakeDeepgram;
  const workers: WorkerProcess[] = [];
  let providerEnv: Record<string, string>;

  before(async function () {
    this.timeout(120_000);
    [openai, deepgram] = await Promise.all([startFakeOpenAI(), startFakeDeepgram()]);
    livekit = await OwnLivekit.create();
    api = await startTestApi({ LIVEKIT_URL: livekit.url });
    livekit.webhookUrl = `${api.url}/api/livekit/webhook`;
    await livekit.up();
    dispatcher = await startTestDispatcher(api.env);
    providerEnv = { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: openai.url, DEEPGRAM_API_KEY: 'dg-test', DEEPGRAM_BASE_URL: deepgram.url };
    await api.call('POST', '/api/agents/register', agentBody('many', { greeting: 'Hi.' }));
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(workers.map((w) => w.kill()));
    await dispatcher?.stop();
    await api?.stop();
    await livekit?.destroy();
    await Promise.all([openai?.close(), deepgram?.close()]);
  });

  it('when two production-mode workers run on one host, then each has its own health port and both take jobs from one batch', async () => {
    // Two jobs fill a worker (load = running jobs / WORKER_MAX_JOBS): LiveKit must send the rest to the other.
    // WORKER_HEALTH_PORT is 0 in the test env: any free port, not the agent server's production default.
    const capped = { ...providerEnv, WORKER_MAX_JOBS: '2' };
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

  it('when a worker is killed mid-session, then its sessions end with a reason instead of staying active', async () => {
    const victim = workers.shift()!;
    const { rooms } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    const list = (await api.call('GET', '/api/sessions?agentId=many&status=active&limit=50')).body.items as { sessionId: string; roomName: string }[];
    const victimId = await (async () => {
      for (const s of list) {
        const id = (await rooms.listParticipants(s.roomName)).map((p) => p.attributes[WORKER_ATTRIBUTE]).find(Boolean);
        if (id) return id;
      }
      return undefined;
    })();
    expect(victimId).to.be.a('string');
    await victim.kill('SIGKILL');
    // Which sessions the killed worker ran is only known by asking each room; check all of them.
    const ended = await until(async () => {
      const views = await Promise.all(list.map(async (s) => (await api.call('GET', `/api/sessions/${s.sessionId}`)).body));
      const stillActive = await Promise.all(
        views
          .filter((v) => v.status === 'active')
          .map(async (v) => (await rooms.listParticipants(v.roomName)).some((p) => p.identity.startsWith('agent-'))),
      );
      // Every session is either over, or still has a live agent (from the surviving worker).
      return stillActive.every(Boolean) && views.some((v) => v.status === 'ended' || v.status === 'failed') ? views : undefined;
    }, 90_000, 500);
    for (const v of ended.filter((x: { status: string }) => x.status !== 'active')) {
      expect(['ended', 'failed']).to.include(v.status);
      if (v.status === 'failed') expect(v.failureReason).to.be.a('string');
      else expect(v.endedAt).to.be.a('string');
    }
  });
});
