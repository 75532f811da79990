import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessToken } from 'livekit-server-sdk';
import { SOURCE_ATTRIBUTE } from '../../common/sessions/index.js';
import { agentBody, type TestApi } from '../support/api.js';
import { stack as env } from '../support/env.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

/** How long a second agent would take to show up after the first: an agent joins within ~2 s of its job here. */
const SECOND_AGENT_WINDOW_MS = 4000;

describe('automatic dispatch: a plain join of agent-{id}-room gets its agent, sessions of the API never get a second one', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let automatic: WorkerProcess;
  const workers: WorkerProcess[] = [];
  const users: TestUser[] = [];

  /** A token minted elsewhere (not by this API), as the original deployment's clients had. */
  async function walkIn(room: string, identity: string): Promise<TestUser> {
    const at = new AccessToken(env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET, { identity, ttl: 600 });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    const u = await TestUser.join(livekit.url, await at.toJwt(), { microphone: true });
    users.push(u);
    return u;
  }
  async function join(token: string): Promise<TestUser> {
    const u = await TestUser.join(livekit.url, token, { microphone: true });
    users.push(u);
    return u;
  }
  const sourceOfAgents = (u: TestUser) =>
    [...u.room.remoteParticipants.values()].filter((p) => p.identity.startsWith('agent-')).map((p) => p.attributes[SOURCE_ATTRIBUTE] ?? 'explicit');
  const view = async (id: string) => (await api.call('GET', `/api/sessions/${id}`)).body;

  before(async function () {
    this.timeout(180_000);
    stack = await startWorkerStack();
    ({ api, livekit } = stack);
    for (const id of ['walk', 'sched', 'named']) await api.call('POST', '/api/agents/register', agentBody(id, { greeting: `${id} here.` }));
    // Both kinds at once against the same LiveKit, as a mixed deployment runs them.
    const spawned = await Promise.allSettled([
      spawnWorker(api.env, stack.providers),
      spawnWorker(api.env, { ...stack.providers, AGENT_DISPATCH: 'automatic' }),
    ]);
    for (const s of spawned) if (s.status === 'fulfilled') workers.push(s.value);
    for (const s of spawned) if (s.status === 'rejected') throw s.reason;
    automatic = workers[1]!;
  });
  afterEach(async function () {
    this.timeout(30_000);
    await Promise.all(users.splice(0).map((u) => u.leave()));
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all(workers.map((w) => w.kill()));
    await stack?.stop();
  });

  it('joining agent-{id}-room with any token brings exactly one agent, recorded as an automatic session: active, in the listing and the metrics, ended when the user leaves; joining again brings a new one', async () => {
    const user = await walkIn('agent-walk-room', 'walk-in-user');
    await until(async () => user.said('walk here.'), 30_000, 50);
    await sleep(SECOND_AGENT_WINDOW_MS);
    expect(user.agents, 'agents that joined the room').to.have.length(1);
    expect(sourceOfAgents(user)).to.deep.equal(['automatic']);

    const listed = await until(async () => {
      const r = await api.call('GET', '/api/sessions?agentId=walk&source=automatic');
      return r.body.items.length ? r.body.items : undefined;
    }, 15_000, 200);
    expect(listed).to.have.length(1);
    const s = listed[0];
    expect(s).to.include({ source: 'automatic', agentId: 'walk', roomName: 'agent-walk-room', status: 'active', participantIdentity: 'walk-in-user', configVersion: 1 });
    expect((await api.call('GET', '/api/sessions?agentId=walk&source=api')).body.items).to.have.length(0);
    expect((await api.call('GET', '/api/metrics')).body.activeSessionsByAgent.walk).to.equal(1);

    await user.leave();
    const ended = await until(async () => {
      const v = await view(s.sessionId);
      return v.status === 'ended' ? v : undefined;
    }, 20_000, 200);
    expect(ended.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'active', 'ended']);
    expect(ended.durationSeconds).to.be.a('number');

    // The room went with the session: joining again at once opens a new room, which gets a new agent.
    const again = await walkIn('agent-walk-room', 'walk-in-user');
    await until(async () => again.said('walk here.'), 30_000, 50);
    expect(again.agents).to.have.length(1);
    const sessions = (await api.call('GET', '/api/sessions?agentId=walk&source=automatic')).body.items;
    expect(sessions.map((x: { sessionId: string }) => x.sessionId)).to.include(s.sessionId).and.to.have.length(2);
  });

  it('a session scheduled ahead whose user joins early: the automatic worker leaves its room alone, the explicit agent comes at the scheduled time, one agent in all', async () => {
    const scheduledAt = new Date(Date.now() + 8000).toISOString();
    const r = await api.call('POST', '/api/sessions', { agentId: 'sched', scheduledAt });
    expect(r.status).to.equal(202);
    // Her join opens the room (agent-sched-room-{suffix}, a name the automatic worker would otherwise take).
    const user = await join(r.body.participantToken);
    await sleep(4000);
    expect(user.agents, 'no agent before the scheduled time').to.have.length(0);
    expect(automatic.lines.some((l) => l.includes('room not for an automatic agent') && l.includes(r.body.roomName) && l.includes('session_room'))).to.equal(true);
    await until(async () => user.said('sched here.'), 40_000, 50);
    await sleep(SECOND_AGENT_WINDOW_MS);
    expect(user.agents, 'agents that joined the room').to.have.length(1);
    expect(sourceOfAgents(user)).to.deep.equal(['explicit']);
    const v = await view(r.body.sessionId);
    expect(v.source).to.equal('api');
    expect(v.status).to.equal('active');
    expect((await api.call('GET', '/api/sessions?agentId=sched&source=automatic')).body.items).to.have.length(0);
  });

  it('a session for a caller-named agent-{id}-room gets one agent; one asked for a room an automatic agent already serves fails with room_has_agent', async () => {
    // The API's room first: the dispatcher creates it with its dispatch, so LiveKit never dispatches it automatically.
    const r = await api.call('POST', '/api/sessions', { agentId: 'named', roomName: 'agent-named-room' });
    const user = await join(r.body.participantToken);
    await until(async () => user.said('named here.'), 30_000, 50);
    await sleep(SECOND_AGENT_WINDOW_MS);
    expect(user.agents).to.have.length(1);
    expect(sourceOfAgents(user)).to.deep.equal(['explicit']);
    await user.leave();
    await until(async () => (await view(r.body.sessionId)).status === 'ended', 20_000, 200);

    // A walk-in first: the automatic agent serves the room, and a session asked for it then gets no second agent.
    const walker = await walkIn('agent-walk-room', 'second-walk-in');
    await until(async () => walker.said('walk here.'), 30_000, 50);
    const late = await api.call('POST', '/api/sessions', { agentId: 'walk', roomName: 'agent-walk-room' });
    expect(late.status).to.equal(202);
    const failed = await until(async () => {
      const v = await view(late.body.sessionId);
      return v.status === 'failed' ? v : undefined;
    }, 20_000, 200);
    expect(failed.failureReason).to.equal('room_has_agent');
    await sleep(SECOND_AGENT_WINDOW_MS);
    expect(walker.agents).to.have.length(1);
  });

  it('rooms of no registered agent, or not named agent-{id}-room, get no agent', async () => {
    const [ghost, lobby] = await Promise.all([walkIn('agent-ghost-room', 'g'), walkIn('lobby', 'l')]);
    await sleep(SECOND_AGENT_WINDOW_MS);
    expect(ghost.agents).to.have.length(0);
    expect(lobby.agents).to.have.length(0);
    const declined = (room: string, reason: string) => automatic.lines.some((l) => l.includes('room not for an automatic agent') && l.includes(`"room":"${room}"`) && l.includes(reason));
    expect(declined('agent-ghost-room', 'agent_not_found')).to.equal(true);
    expect(declined('lobby', 'not_agent_room')).to.equal(true);
  });
});
