import { expect } from 'chai';
import { agentBody } from '../support/api.js';
import { startFakeBitHuman, type FakeBitHuman } from '../support/fakes/bithuman.js';
import { sample } from '../support/prometheus-text.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

describe('an agent with an avatar on a worker without BITHUMAN_API_SECRET', function () {
  this.timeout(180_000);
  let stack: WorkerStack;
  let worker: WorkerProcess;
  let bithuman: FakeBitHuman;
  let user: TestUser | undefined;

  before(async function () {
    this.timeout(120_000);
    // The fake is where the worker would go: a call there (a 401 without the secret) is what must not happen.
    bithuman = await startFakeBitHuman({ secret: 'bithuman-secret-the-worker-lacks' });
    stack = await startWorkerStack();
    worker = await spawnWorker(stack.api.env, { ...stack.providers, BITHUMAN_API_SECRET: '', BITHUMAN_API_URL: bithuman.url });
  });
  after(async function () {
    this.timeout(60_000);
    await user?.leave();
    await worker?.kill();
    await stack?.stop();
    await bithuman?.close();
  });

  it('skips the avatar at once (counted avatar_not_configured), never calls BitHuman, and the session runs voice-only', async () => {
    const { api, livekit } = stack;
    await api.call('POST', '/api/agents/register', agentBody('faceless', { avatarModel: 'avatar-7', greeting: 'Voice only, no face configured.' }));
    const s = (await api.call('POST', '/api/sessions', { agentId: 'faceless' })).body as { sessionId: string; participantToken: string };
    user = await TestUser.join(livekit.url, s.participantToken);
    await until(async () => user!.said('Voice only, no face configured.'), 60_000, 100);
    expect(user.loudestAgentAudio).to.be.greaterThan(0.01);
    expect((await api.call('GET', `/api/sessions/${s.sessionId}`)).body.status).to.equal('active');
    // Job processes report to the worker's metrics over loopback, a moment after the event.
    const text = await until(async () => {
      const t = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      return (sample(t, 'agent_runtime_avatar_starts_total', { result: 'avatar_not_configured' }) ?? 0) >= 1 ? t : undefined;
    }, 10_000, 100);
    expect(sample(text, 'agent_runtime_avatar_starts_total', { result: 'failed' })).to.equal(0);
    expect(sample(text, 'agent_runtime_avatar_starts_total', { result: 'started' })).to.equal(0);
    expect(bithuman.requests).to.deep.equal([]);
  });
});
