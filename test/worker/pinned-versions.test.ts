import { expect } from 'chai';
import { agentBody, type TestApi } from '../support/api.js';
import { speechPcm } from '../support/fakes/audio.js';
import { instructionsOf, type FakeOpenAI } from '../support/fakes/openai.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

const V1 = { greeting: 'Good day, version one speaking.', instructions: 'You are the version one agent.' };
const V2 = { greeting: 'Hi there, version two speaking.', instructions: 'You are the version two agent.' };

describe('pinned config versions: a session runs the version it was asked with', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let openai: FakeOpenAI;
  let worker: WorkerProcess;
  const users: TestUser[] = [];

  const view = async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body;
  async function post(body: Record<string, unknown>) {
    const r = await api.call('POST', '/api/sessions', body);
    expect(r.status, JSON.stringify(r.body)).to.equal(202);
    return r.body as { sessionId: string; roomName: string; participantToken: string };
  }
  async function join(s: { participantToken: string }) {
    const u = await TestUser.join(livekit.url, s.participantToken, { microphone: true });
    users.push(u);
    return u;
  }
  /** The greeting the agent said in the room, once one of the two was heard. */
  const greetingHeard = (u: TestUser) => until(async () => [V1, V2].find((v) => u.said(v.greeting))?.greeting, 60_000, 100);

  before(async function () {
    this.timeout(120_000);
    stack = await startWorkerStack();
    ({ livekit, api, openai } = stack);
    worker = await spawnWorker(api.env, stack.providers);
    const reg = await api.call('POST', '/api/agents/register', agentBody('pin', V1));
    expect(reg.body.version).to.equal(1);
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(users.map((u) => u.leave()));
    await worker?.kill();
    await stack?.stop();
  });

  it('when the agent is updated between the request and the dispatch, then the session still runs the version it was asked with', async () => {
    const early = await post({ agentId: 'pin', scheduledAt: new Date(Date.now() + 6000).toISOString() });
    expect(await view(early.sessionId)).to.include({ status: 'queued', configVersion: 1 });

    const updated = await api.call('PATCH', '/api/agents/pin', V2);
    expect(updated.body).to.include({ version: 2, greeting: V2.greeting });
    // The update landed before the dispatch: what follows is about the pinned version, not a race.
    expect((await view(early.sessionId)).status).to.equal('queued');

    const user = await join(early);
    expect(await greetingHeard(user)).to.equal(V1.greeting);
    const chatBefore = openai.requests.chat.length;
    await user.speak(speechPcm('which version are you', 48000), 48000);
    const req = await until(async () => openai.requests.chat.slice(chatBefore).find((r) => instructionsOf(r).length > 0), 60_000, 100);
    expect(instructionsOf(req)).to.include(V1.instructions);
    expect(instructionsOf(req)).not.to.include(V2.instructions);
    expect(user.said(V2.greeting)).to.equal(false);
    const v = await until(async () => {
      const x = await view(early.sessionId);
      return x.status === 'active' ? x : undefined;
    });
    expect(v.configVersion).to.equal(1);
    await user.leave();
  });

  it('a session asked for after the update runs the new version', async () => {
    const s = await post({ agentId: 'pin' });
    expect((await view(s.sessionId)).configVersion).to.equal(2);
    const user = await join(s);
    expect(await greetingHeard(user)).to.equal(V2.greeting);
    await user.leave();
  });

  it('a session that names version 1 after version 2 exists runs version 1', async () => {
    const s = await post({ agentId: 'pin', version: 1 });
    expect((await view(s.sessionId)).configVersion).to.equal(1);
    const user = await join(s);
    expect(await greetingHeard(user)).to.equal(V1.greeting);
    const chatBefore = openai.requests.chat.length;
    await user.speak(speechPcm('and now which version', 48000), 48000);
    const req = await until(async () => openai.requests.chat.slice(chatBefore).find((r) => instructionsOf(r).length > 0), 60_000, 100);
    expect(instructionsOf(req)).to.include(V1.instructions);
    await user.leave();
  });

  it('a version the agent does not have is refused with a 404 problem naming `version`, and nothing is queued', async () => {
    const r = await api.call('POST', '/api/sessions', { agentId: 'pin', version: 3 });
    expect(r.status).to.equal(404);
    expect(r.headers.get('content-type')).to.match(/problem\+json/);
    expect(r.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['version']);
    const listed = await api.call('GET', '/api/sessions?agentId=pin');
    expect(listed.body.items).to.have.length(3);
  });
});
