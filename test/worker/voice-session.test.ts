import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import { agentBody, type TestApi } from '../support/api.js';
import { speechPcm } from '../support/fakes/audio.js';
import { startFakeBitHuman, type FakeBitHuman } from '../support/fakes/bithuman.js';
import { DEFAULT_DEEPGRAM_TRANSCRIPT, type FakeDeepgram } from '../support/fakes/deepgram.js';
import { imageUrlsOf, instructionsOf, lastUserText, type FakeOpenAI } from '../support/fakes/openai.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { sample } from '../support/prometheus-text.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

const BITHUMAN_SECRET = 'bithuman-test-secret-123';

describe('the agent worker, end to end on a real LiveKit server with local fakes of the providers', function () {
  this.timeout(180_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let worker: WorkerProcess;
  let openai: FakeOpenAI;
  let deepgram: FakeDeepgram;
  let bithuman: FakeBitHuman;
  const users: TestUser[] = [];

  async function session(agentId: string) {
    const s = (await api.call('POST', '/api/sessions', { agentId })).body as { sessionId: string; roomName: string; participantToken: string };
    const user = await TestUser.join(livekit.url, s.participantToken);
    users.push(user);
    return { ...s, user };
  }
  const status = async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body;

  before(async function () {
    this.timeout(120_000);
    bithuman = await startFakeBitHuman({ secret: BITHUMAN_SECRET });
    stack = await startWorkerStack();
    ({ livekit, api, openai, deepgram } = stack);
    worker = await spawnWorker(api.env, { ...stack.providers, BITHUMAN_API_SECRET: BITHUMAN_SECRET, BITHUMAN_API_URL: bithuman.url });
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(users.map((u) => u.leave()));
    await worker?.kill();
    await stack?.stop();
    await bithuman?.close();
  });

  it('when the avatar cannot start, then the session goes on voice-only, and the failure is counted', async () => {
    await api.call('POST', '/api/agents/register', agentBody('noface', { avatarModel: 'avatar-busy', greeting: 'Voice only today.' }));
    bithuman.failNext(402);
    const s = await session('noface');
    await until(async () => s.user.said('Voice only today.'), 60_000, 100);
    expect(s.user.loudestAgentAudio).to.be.greaterThan(0.01);
    expect(bithuman.requests.some((r) => r.status === 402 && (r.body as { room_name?: string }).room_name === s.roomName)).to.equal(true);
    expect((await status(s.sessionId)).status).to.equal('active');
    const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    expect(sample(text, 'agent_runtime_avatar_starts_total', { result: 'failed' })).to.be.at.least(1);
  });

  describe('a voice session', () => {
    let s: Awaited<ReturnType<typeof session>>;
    let req: FakeOpenAI['requests']['chat'][number];
    before(async function () {
      this.timeout(120_000);
      await api.call(
        'POST',
        '/api/agents/register',
        agentBody('voice', { greeting: 'Welcome to the test desk.', instructions: 'You are the test desk agent.', translation: { targetLanguage: 'German', sourceLanguage: 'English' } }),
      );
      s = await session('voice');
      await until(async () => s.user.said('Welcome to the test desk.'), 60_000, 100);
      await s.user.speak(speechPcm('what is the weather like today', 48000), 48000);
      req = await until(async () => s.user.said('fake assistant') && openai.requests.chat.find((r) => instructionsOf(r).includes('test desk agent')), 60_000, 100);
    });

    it('greets first: the greeting reaches the room as a transcription, with non-silent agent audio', () => {
      expect(s.user.transcripts.find((t) => t.text.includes('Welcome to the test desk.'))!.from).to.match(/^agent-/);
      expect(s.user.loudestAgentAudio).to.be.greaterThan(0.01);
    });

    it("hears the user: the user's speech goes through Deepgram to the LLM, whose answer is spoken back", () => {
      expect(deepgram.authHeaders[0]).to.equal('Token dg-test');
      expect(lastUserText(req)).to.include(DEFAULT_DEEPGRAM_TRANSCRIPT);
      expect(req.model).to.equal('gpt-4o-mini');
      expect(s.user.said('Hello! This is the fake assistant speaking.')).to.equal(true);
      expect(openai.requests.speech.length).to.be.greaterThan(1);
    });

    it('translates: the instructions sent to the LLM ask for the target language', () => {
      const instructions = instructionsOf(req);
      expect(instructions).to.include('You are the test desk agent.');
      expect(instructions).to.include('Always answer in German');
    });

    it('records the session active with the dispatch the agent serves, and counts the job in the worker metrics', async () => {
      const v = await until(async () => {
        const x = await status(s.sessionId);
        return x.dispatchId ? x : undefined;
      });
      expect(v.status).to.equal('active');
      const { dispatch } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
      const listed = (await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME);
      expect(listed.map((d) => d.id)).to.deep.equal([v.dispatchId]);
      const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      expect(sample(text, 'agent_runtime_worker_jobs_total', { result: 'accepted' })).to.be.at.least(1);
      expect(sample(text, 'agent_runtime_worker_active_sessions', { agent_id: 'voice' })).to.equal(1);
      expect(sample(text, 'agent_runtime_session_stage_seconds_count', { stage: 'session_started' })).to.be.at.least(1);
      expect(sample(text, 'agent_runtime_config_resolution_seconds_count', { tier: 'lru' }) ?? sample(text, 'agent_runtime_config_resolution_seconds_count', { tier: 'redis' })).to.be.at.least(1);
    });
  });

  it("with vision, the user's camera frame goes to the LLM as image content", async () => {
    await api.call('POST', '/api/agents/register', agentBody('eyes', { vision: true, greeting: 'I can see you.' }));
    const before = openai.requests.chat.length;
    const s = await session('eyes');
    const stop = await s.user.showCamera([200, 30, 30]);
    try {
      await until(async () => s.user.said('I can see you.'), 60_000, 100);
      await s.user.speak(speechPcm('what do you see', 48000), 48000);
      const req = await until(async () => openai.requests.chat.slice(before).find((r) => imageUrlsOf(r).length > 0), 60_000, 100);
      expect(imageUrlsOf(req)[0]).to.match(/^data:image\/(jpeg|png);base64,/);
    } finally {
      stop();
    }
  });

  it('with avatarModel, BitHuman is asked to join with a room-scoped token and receives the agent audio', async () => {
    await api.call('POST', '/api/agents/register', agentBody('face', { avatarModel: 'avatar-42', greeting: 'Hello, I have a face now.' }));
    const s = await session('face');
    const req = await until(async () => bithuman.requests.find((r) => (r.body as { room_name?: string }).room_name === s.roomName), 60_000, 100);
    expect(req.status).to.equal(200);
    expect(req.headers['api-secret']).to.equal(BITHUMAN_SECRET);
    expect(req.body).to.include({ room_name: s.roomName, mode: 'cpu', agent_id: 'avatar-42' });
    const token = (req.body as { livekit_token: string }).livekit_token;
    expect(token).not.to.include(BITHUMAN_SECRET);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(claims.sub).to.equal('bithuman-avatar-agent');
    expect(claims.video).to.deep.include({ room: s.roomName, roomJoin: true });
    expect(claims.attributes['lk.publish_on_behalf']).to.match(/^agent-/);
    expect(JSON.stringify(claims)).not.to.include(BITHUMAN_SECRET);
    await until(async () => bithuman.audioBytesReceived > 0, 60_000, 100);
  });
});
