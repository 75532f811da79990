import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { createRedis, redisReady } from '../../common/redis.js';
import { livekitClients } from '../../common/livekit.js';
import { WorkerCapacity } from '../../common/workers/capacity.js';
import { agentBody, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { speechPcm } from '../support/fakes/audio.js';
import { DEFAULT_DEEPGRAM_TRANSCRIPT } from '../support/fakes/deepgram.js';
import { DEFAULT_CHAT_REPLY, messageText, type FakeOpenAI } from '../support/fakes/openai.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { sample } from '../support/prometheus-text.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

/** The processes `pid` forked (a worker's job processes). */
function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

interface Created {
  sessionId: string;
  roomName: string;
  participantToken: string;
  postedAt: number;
}

describe('placement: every session gets its agent in about a second and keeps one', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let openai: FakeOpenAI;
  let capacity: WorkerCapacity;
  let redis: ReturnType<typeof createRedis>;
  const workers: WorkerProcess[] = [];
  const users: TestUser[] = [];

  const view = async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body;
  async function post(agentId: string): Promise<Created> {
    const postedAt = Date.now();
    const r = await api.call('POST', '/api/sessions', { agentId });
    expect(r.status).to.equal(202);
    return { ...r.body, postedAt };
  }
  async function join(s: Created): Promise<TestUser> {
    const u = await TestUser.join(livekit.url, s.participantToken, { microphone: true });
    users.push(u);
    return u;
  }
  async function worker(overrides: Record<string, string>): Promise<WorkerProcess> {
    const w = await spawnWorker(api.env, { ...stack.providers, ...overrides });
    workers.push(w);
    return w;
  }
  async function stopWorkers() {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
  }
  const workerIdOf = async (w: WorkerProcess) =>
    until(async () => (await capacity.summary()).workers.find((x) => x.pid === w.child.pid)?.id, 10_000, 50);

  before(async function () {
    this.timeout(120_000);
    stack = await startWorkerStack();
    ({ api, livekit, openai } = stack);
    redis = createRedis(api.env.REDIS_URL!);
    await redisReady(redis);
    capacity = new WorkerCapacity(redis, api.env.QUEUE_PREFIX!, api.env.AGENT_NAME!);
    await api.call('POST', '/api/agents/register', agentBody('desk', { greeting: 'Desk here.' }));
  });
  afterEach(async function () {
    this.timeout(60_000);
    await Promise.all(users.splice(0).map((u) => u.leave()));
    await stopWorkers();
    // Each test starts with no worker counted: the killed ones' heartbeats lapse.
    await until(async () => (await capacity.summary()).workers.length === 0, 10_000, 100);
  });
  after(async function () {
    this.timeout(60_000);
    await stack?.stop();
    redis?.disconnect();
  });

  it('is not ready before a worker can take a job; the first session after ready has its agent within 3 s (default worker settings)', async () => {
    const before = await fetch(`${api.url}/readyz`);
    expect(before.status).to.equal(503);
    expect(((await before.json()) as { detail: string }).detail).to.include('no agent worker ready');
    // As `npm start` runs it: default job slots, warm pool and CPU guard; not waiting for it here.
    const spawned = spawnWorker(api.env, { ...stack.providers, WORKER_LOAD_THRESHOLD: '', WORKER_IDLE_PROCESSES: '' });
    await until(async () => (await fetch(`${api.url}/readyz`)).status === 200, 90_000, 50);
    const s = await post('desk');
    const user = await join(s);
    await until(async () => user.agents.length > 0, 15_000, 20);
    expect(user.agents[0]!.joinedAt - s.postedAt, 'POST → agent joined (ms)').to.be.below(3000);
    workers.push(await spawned);
    await until(async () => user.said('Desk here.'), 15_000, 50);
  });

  it('with WORKER_MAX_JOBS=1, three sessions with users in their rooms each get their agent as soon as the previous user leaves (within 6 s, well before the 15 s join check); one agent per room', async () => {
    const w = await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '2' });
    // Its warm pool full: the job processes start one at a time (2-5 s each here), and the claim is about
    // placing a session into a slot that frees, not about how long a process takes to start.
    await until(async () => ((await capacity.summary()).workers.find((x) => x.pid === w.child.pid)?.warm ?? 0) >= 2, 30_000, 100);
    const sessions = await Promise.all([post('desk'), post('desk'), post('desk')]);
    const rooms = await Promise.all(sessions.map(join));
    // The first one's agent comes at once; the others wait for the slot, and say so.
    const first = await until(async () => {
      const got = rooms.findIndex((u) => u.agents.length > 0);
      return got >= 0 ? got : undefined;
    }, 15_000, 20);
    const order = [first, ...[0, 1, 2].filter((i) => i !== first)];
    const waiting = await view(sessions[order[1]!]!.sessionId);
    expect(waiting.status).to.equal('queued');
    expect(waiting.waitingFor).to.equal('capacity');

    for (let k = 0; k < 2; k++) {
      const done = rooms[order[k]!]!;
      const next = rooms[order[k + 1]!]!;
      await until(async () => done.said('Desk here.'), 20_000, 50);
      expect(next.agents, 'no agent while the only slot is taken').to.have.length(0);
      const leftAt = Date.now();
      await done.leave();
      await until(async () => next.agents.length > 0, 15_000, 20);
      // The freed slot is used at once, not after the join check's recovery (AGENT_JOIN_TIMEOUT, 15 s): the bound
      // only tells those apart on a loaded test machine; bench section 0 gives the figures.
      expect(next.agents[0]!.joinedAt - leftAt, 'previous user left → next agent joined (ms)').to.be.below(6000);
      await until(async () => (await view(sessions[order[k]!]!.sessionId)).status === 'ended', 15_000, 100);
    }
    await until(async () => rooms[order[2]!]!.said('Desk here.'), 20_000, 50);
    for (const u of rooms) expect(u.agents, 'agents that joined this room').to.have.length(1);
    // The worker holds (for recovery) only the session it still runs.
    const wid = await workerIdOf(w);
    expect(await until(async () => {
      const held = await capacity.held(wid);
      return held.length === 1 ? held : undefined;
    }, 5000, 100)).to.deep.equal([sessions[order[2]!]!.sessionId]);
    for (const s of sessions) {
      const v = await view(s.sessionId);
      expect(v.placement.generation, 'never placed again').to.equal(0);
      expect(v.placement.acceptedAt).to.be.a('string');
      expect(v.transitions.map((t: { status: string }) => t.status).slice(0, 3)).to.deep.equal(['queued', 'dispatched', 'active']);
    }
  });

  it('a worker full when a session is dispatched and free 5 s later: the agent joins within 2 s of it freeing', async () => {
    await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '2' });
    // Its one slot goes to a job this API knows nothing of (a dispatch made straight at LiveKit).
    const { dispatch, rooms } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    await dispatch.createDispatch('other-room', api.env.AGENT_NAME!, { metadata: JSON.stringify({ agentId: 'desk' }) });
    await until(async () => (await capacity.summary()).workers[0]?.busy === 1, 20_000, 50);
    const s = await post('desk');
    const user = await join(s);
    await new Promise((r) => setTimeout(r, 5000));
    expect(user.agents).to.have.length(0);
    expect((await view(s.sessionId)).waitingFor).to.equal('capacity');
    // The other job ends with its room: the worker reports its slot free.
    await rooms.deleteRoom('other-room');
    const freedAt = await until(async () => ((await capacity.summary()).workers[0]?.free ? Date.now() : undefined), 15_000, 20);
    await until(async () => user.agents.length > 0, 15_000, 20);
    expect(user.agents[0]!.joinedAt - freedAt, 'slot freed → agent joined (ms)').to.be.below(2000);
    await until(async () => user.said('Desk here.'), 20_000, 50);
  });

  it('a worker killed with its heartbeat live stops counting within the heartbeat TTL, and the waiting session goes to the other worker', async () => {
    const a = await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '1' });
    const b = await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '1' });
    const [aId, bId] = [await workerIdOf(a), await workerIdOf(b)];
    // B's slot is taken by a session; A's is free.
    const s0 = await post('desk');
    const u0 = await join(s0);
    await until(async () => u0.said('Desk here.'), 20_000, 50);
    const holder = (await view(s0.sessionId)).placement.workerId;
    const [victim, victimId, survivorId] = holder === aId ? [b, bId, aId] : [a, aId, bId];
    expect((await capacity.summary()).freeSlots).to.equal(1);

    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    workers.splice(workers.indexOf(victim), 1);
    // Asked for at once: the dead worker's slot may still count, but the session must not be lost.
    const s1 = await post('desk');
    const u1 = await join(s1);
    const gone = await until(async () => ((await capacity.summary()).workers.some((w) => w.id === victimId) ? undefined : Date.now()), 10_000, 50);
    expect(gone - killedAt, 'killed → its capacity gone (ms)').to.be.below(2600);
    await until(async () => (await view(s1.sessionId)).waitingFor === 'capacity', 10_000, 100);
    expect(u1.agents).to.have.length(0);

    const leftAt = Date.now();
    await u0.leave();
    await until(async () => u1.agents.length > 0, 20_000, 20);
    expect(u1.agents[0]!.joinedAt - leftAt, 'slot freed → agent joined (ms)').to.be.below(3000);
    const v = await until(async () => {
      const x = await view(s1.sessionId);
      return x.status === 'active' ? x : undefined;
    }, 15_000, 100);
    expect(v.placement.workerId).to.equal(survivorId);
    expect(u1.agents).to.have.length(1);
  });

  it('a session whose user never comes ends no_user after SESSION_NO_USER_TIMEOUT and gives its slot back', async () => {
    await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '1', SESSION_NO_USER_TIMEOUT: '2' });
    const s = await post('desk');
    const v = await until(async () => {
      const x = await view(s.sessionId);
      return x.status === 'ended' ? x : undefined;
    }, 20_000, 200);
    expect(v.failureReason).to.equal('no_user');
    expect(v.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched', 'active', 'ended']);
    await until(async () => (await capacity.summary()).workers[0]?.free === 1, 10_000, 100);
  });

  it('a session that ends while its job is starting: the agent, connecting after it, leaves at once and frees the slot', async () => {
    const w = await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '1', SESSION_NO_USER_TIMEOUT: '120' });
    // The warm job process is stopped: the job is taken, and its process runs it only after the session is over.
    const procs = childPids(w.child.pid!);
    expect(procs, 'job processes').not.to.deep.equal([]);
    for (const p of procs) process.kill(p, 'SIGSTOP');
    let s: Created;
    try {
      s = await post('desk');
      await until(async () => w.lines.some((l) => l.includes('"job accepted"') && l.includes(s.sessionId)), 20_000, 20);
      const cancelled = await api.call('DELETE', `/api/sessions/${s.sessionId}`);
      expect(cancelled.status).to.equal(200);
      expect(cancelled.body.status).to.equal('ended');
    } finally {
      for (const p of procs) process.kill(p, 'SIGCONT');
    }
    // Its connect makes the closed room again, empty; the agent leaves it, and the slot is free, long before the no-user timeout.
    await until(async () => w.lines.some((l) => l.includes('"room connected"') && l.includes(s.sessionId)), 30_000, 50);
    await until(async () => (await capacity.summary()).workers[0]?.free === 1, 10_000, 100);
    const { rooms } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    await until(async () => (await rooms.listParticipants(s.roomName).catch(() => [])).length === 0, 10_000, 100);
    expect(w.lines.some((l) => l.includes('session over before its agent joined') && l.includes(s.sessionId))).to.equal(true);
    const v = await view(s.sessionId);
    expect(v.status).to.equal('ended');
    expect(v.failureReason).to.equal('cancelled');
    expect(v.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched', 'ended']);
  });

  it('a dispatcher stopped while a session waits for a slot gives it back: it keeps its place and goes out with the next dispatcher', async () => {
    // No worker yet: the session waits.
    const s = await post('desk');
    const user = await join(s);
    await until(async () => (await view(s.sessionId)).waitingFor === 'capacity', 10_000, 100);
    const stopping = Date.now();
    await stack.dispatcher.stop();
    expect(Date.now() - stopping, 'stop did not wait for the waiting session (ms)').to.be.below(5000);
    expect((await view(s.sessionId)).status).to.equal('queued');
    stack.dispatcher = await startTestDispatcher(api.env);
    await worker({ WORKER_MAX_JOBS: '1', WORKER_IDLE_PROCESSES: '1' });
    await until(async () => user.agents.length > 0, 20_000, 50);
    await until(async () => user.said('Desk here.'), 20_000, 50);
    const v = await view(s.sessionId);
    expect(v.transitions.map((t: { status: string }) => t.status).slice(0, 3)).to.deep.equal(['queued', 'dispatched', 'active']);
    expect(v.placement.generation).to.equal(0);
    expect(user.agents).to.have.length(1);
  });

  it('a worker SIGKILLed mid-conversation: a new agent joins the user within 5 s, continues the conversation, and the session never ends while the user stays', async () => {
    await worker({ WORKER_MAX_JOBS: '2', WORKER_IDLE_PROCESSES: '1' });
    await worker({ WORKER_MAX_JOBS: '2', WORKER_IDLE_PROCESSES: '1' });
    const ids = await Promise.all(workers.map(workerIdOf));
    const s = await post('desk');
    const user = await join(s);
    await until(async () => user.said('Desk here.'), 20_000, 50);
    await user.speak(speechPcm('what is the weather like today', 48000), 48000);
    await until(async () => user.said(DEFAULT_CHAT_REPLY), 30_000, 50);

    const holderId = (await view(s.sessionId)).placement.workerId;
    const victim = workers[ids.indexOf(holderId)]!;
    const firstAgent = user.agents[0]!.identity;
    const greetings = user.transcripts.filter((t) => t.text.includes('Desk here.')).length;
    const chatsBefore = openai.requests.chat.length;
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    workers.splice(workers.indexOf(victim), 1);

    const statuses: string[] = [];
    const watch = setInterval(() => void view(s.sessionId).then((v) => statuses.push(v.status), () => undefined), 200);
    try {
      const replacement = await until(async () => user.agents.find((a) => a.identity !== firstAgent), 15_000, 20);
      expect(replacement.joinedAt - killedAt, 'killed → new agent joined (ms)').to.be.below(5000);
      expect(user.agentsPresent, 'the dead agent is gone from the room').to.deep.equal([replacement.identity]);

      const v = await until(async () => {
        const x = await view(s.sessionId);
        return x.status === 'active' && x.placement?.recoveries === 1 ? x : undefined;
      }, 15_000, 100);
      const moves = v.transitions.map((t: { status: string }) => t.status);
      expect(moves).to.deep.equal(['queued', 'dispatched', 'active', 'recovering', 'active']);
      expect(v.placement.workerId).to.equal(ids.find((id) => id !== holderId));

      // The new agent goes on from the conversation instead of greeting again.
      await user.speak(speechPcm('and what about tomorrow', 48000), 48000);
      const req = await until(async () => openai.requests.chat.slice(chatsBefore).find((r) => r.messages.some((m) => m.role === 'user')), 30_000, 50);
      const said = req.messages.filter((m) => m.role === 'user' || m.role === 'assistant').map((m) => `${m.role}: ${messageText(m)}`);
      expect(said.length, `messages: ${JSON.stringify(said)}`).to.be.at.least(3);
      expect(said.slice(0, 3)).to.deep.equal([`assistant: Desk here.`, `user: ${DEFAULT_DEEPGRAM_TRANSCRIPT}`, `assistant: ${DEFAULT_CHAT_REPLY}`]);
      expect(user.transcripts.filter((t) => t.text.includes('Desk here.')).length, 'greeted once').to.equal(greetings);
    } finally {
      clearInterval(watch);
    }
    expect(statuses).to.not.include('ended');
    const text = await (await fetch(`http://127.0.0.1:${stack.dispatcher.metricsPort}/metrics`)).text();
    expect(sample(text, 'agent_runtime_recoveries_total', { outcome: 'replaced' })).to.be.at.least(1);
  });
});
