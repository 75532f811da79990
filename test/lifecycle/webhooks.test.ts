import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { AccessToken } from 'livekit-server-sdk';
import { WEBHOOK_MAX_AGE_SECONDS } from '../../api/livekit/webhook-replays.js';
import { livekitClients } from '../../common/livekit.js';
import { sessionsQueue } from '../../common/queue.js';
import { createRedis } from '../../common/redis.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { stack } from '../support/env.js';
import { HoldingProxy, type ProxiedRequest } from '../support/holding-proxy.js';
import { OwnLivekit } from '../support/livekit-server.js';
import { joinAsAgent, joinRoom } from '../support/participant.js';
import { expectExactlyOneDispatchEach, until } from '../support/sessions.js';

async function statusOf(api: TestApi, id: string) {
  return (await api.call('GET', `/api/sessions/${id}`)).body;
}

describe('session lifecycle from LiveKit webhooks', function () {
  this.timeout(60_000);
  let livekit: OwnLivekit;
  let api: TestApi;
  let dispatcher: RunningDispatcher | undefined;

  beforeEach(async () => {
    livekit = await OwnLivekit.create();
    api = await startTestApi({ LIVEKIT_URL: livekit.url });
    livekit.webhookUrl = `${api.url}/api/livekit/webhook`;
    await livekit.up();
    await api.call('POST', '/api/agents/register', agentBody('w'));
  });
  afterEach(async () => {
    await dispatcher?.stop();
    dispatcher = undefined;
    await api.stop();
    await livekit.destroy();
  });

  it('when the agent joins, then the session is active; when it leaves, then ended with its duration', async () => {
    dispatcher = await startTestDispatcher(api.env);
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w' })).body;
    await until(async () => (await statusOf(api, s.sessionId)).status === 'dispatched');
    const agent = await joinAsAgent(livekit.url, s.roomName, s.sessionId);
    const active = await until(async () => {
      const v = await statusOf(api, s.sessionId);
      return v.status === 'active' ? v : undefined;
    });
    expect(active.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched', 'active']);
    await new Promise((r) => setTimeout(r, 1200));
    await agent.disconnect();
    const ended = await until(async () => {
      const v = await statusOf(api, s.sessionId);
      return v.status === 'ended' ? v : undefined;
    });
    expect(ended.durationSeconds).to.be.greaterThan(1).and.lessThan(30);
    expect(ended.endedAt).to.be.a('string');
  });

  it('when the room finishes, then its running session ends', async () => {
    dispatcher = await startTestDispatcher(api.env);
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w' })).body;
    await until(async () => (await statusOf(api, s.sessionId)).status === 'dispatched');
    // No session attribute: the webhook finds the session by its room.
    const agent = await joinAsAgent(livekit.url, s.roomName);
    await until(async () => (await statusOf(api, s.sessionId)).status === 'active');
    await livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never).rooms.deleteRoom(s.roomName);
    await until(async () => (await statusOf(api, s.sessionId)).status === 'ended');
    await agent.disconnect().catch(() => undefined);
  });

  it('refuses unsigned and forged webhooks with 401 and changes nothing', async () => {
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w' })).body;
    const event = JSON.stringify({ event: 'participant_joined', room: { name: s.roomName }, participant: { identity: 'x', kind: 'AGENT' } });
    const unsigned = await fetch(`${api.url}/api/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json' }, body: event });
    expect(unsigned.status).to.equal(401);
    const forged = await fetch(`${api.url}/api/livekit/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/webhook+json', authorization: 'eyJhbGciOiJIUzI1NiJ9.eyJzaGEyNTYiOiJ4In0.c2lnbmF0dXJl' },
      body: event,
    });
    expect(forged.status).to.equal(401);
    expect(forged.headers.get('content-type')).to.match(/problem\+json/);
    expect((await statusOf(api, s.sessionId)).status).to.equal('queued');
  });

  it('when the user joins before the dispatcher ran, then the token dispatches the agent and the dispatcher adds no second one', async () => {
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w' })).body;
    const user = await joinRoom(livekit.url, s.participantToken);
    const { dispatch } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    const fromToken = (await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME);
    expect(fromToken).to.have.length(1);
    expect(JSON.parse(fromToken[0]!.metadata)).to.include({ agentId: 'w', sessionId: s.sessionId, configVersion: 1 });

    dispatcher = await startTestDispatcher(api.env);
    await until(async () => (await statusOf(api, s.sessionId)).status === 'dispatched');
    expect((await dispatch.listDispatch(s.roomName)).map((d) => d.id)).to.deep.equal([fromToken[0]!.id]);
    await expectExactlyOneDispatchEach(api, [s.sessionId], livekit.url);
    await user.disconnect();
  });

  it('when the caller names a room that is already open, then the dispatcher adds the session\'s dispatch to it, once', async () => {
    const { rooms, dispatch } = livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never);
    const roomName = `desk-${Date.now()}`;
    await rooms.createRoom({ name: roomName, emptyTimeout: 60 });
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w', roomName })).body;
    dispatcher = await startTestDispatcher(api.env);
    await until(async () => (await statusOf(api, s.sessionId)).status === 'dispatched');
    await expectExactlyOneDispatchEach(api, [s.sessionId], livekit.url);
    // The same job delivered again (as after a crash) adds nothing.
    const redis = createRedis(api.env.REDIS_URL!);
    const queue = sessionsQueue(redis, api.env.QUEUE_PREFIX!);
    try {
      const job = (await queue.getJob(s.sessionId))!;
      const replay = await queue.add('session', job.data, { jobId: `${s.sessionId}-replay` });
      const outcome = await until(async () => (await queue.getJob(replay.id!))?.returnvalue ?? undefined);
      expect(outcome).to.deep.equal({ result: 'skipped', status: 'dispatched' });
      expect((await dispatch.listDispatch(roomName)).filter((d) => d.agentName === api.env.AGENT_NAME)).to.have.length(1);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });
});

/** Signs a webhook body as LiveKit does: a JWT of the LiveKit key whose sha256 claim is the body's digest. */
async function signWebhook(body: string): Promise<string> {
  const at = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, { ttl: 300 });
  at.sha256 = createHash('sha256').update(body).digest('base64');
  return at.toJwt();
}

describe('webhooks changed after signing, replayed, or too old', function () {
  this.timeout(90_000);
  let livekit: OwnLivekit;
  let api: TestApi;
  /** Between LiveKit and the API: every webhook LiveKit sent, as sent (body and signature). */
  let relay: HoldingProxy;
  let dispatcher: RunningDispatcher;

  beforeEach(async () => {
    livekit = await OwnLivekit.create();
    api = await startTestApi({ LIVEKIT_URL: livekit.url });
    relay = await HoldingProxy.start(api.url);
    livekit.webhookUrl = `${relay.url}/api/livekit/webhook`;
    await livekit.up();
    await api.call('POST', '/api/agents/register', agentBody('w'));
    dispatcher = await startTestDispatcher(api.env);
  });
  afterEach(async () => {
    await dispatcher.stop();
    await relay.close();
    await api.stop();
    await livekit.destroy();
  });

  const eventsOf = (room: string, event?: string) =>
    relay.requests.filter((r) => {
      const e = JSON.parse(r.body.toString()) as { event: string; room?: { name: string } };
      return e.room?.name === room && (!event || e.event === event);
    });
  const post = (body: string, authorization: string) =>
    fetch(`${api.url}/api/livekit/webhook`, { method: 'POST', headers: { 'content-type': 'application/webhook+json', authorization }, body });

  async function activeSession(roomName?: string) {
    const s = (await api.call('POST', '/api/sessions', { agentId: 'w', ...(roomName ? { roomName } : {}) })).body;
    await until(async () => (await statusOf(api, s.sessionId)).status === 'dispatched');
    // No session attribute: the webhooks find the session by its room, as they do for agents that run elsewhere.
    const agent = await joinAsAgent(livekit.url, s.roomName);
    await until(async () => (await statusOf(api, s.sessionId)).status === 'active');
    return { s, agent };
  }

  it('when a correctly signed webhook\'s body is changed after signing, then 401 and the session does not move', async () => {
    const { s, agent } = await activeSession();
    const joined = (await until(async () => eventsOf(s.roomName, 'participant_joined').find((r) => r.status === 200)))!;
    // The agent's own join, turned into its leave (with a new id, as a forger would): it would end the session.
    const forged = JSON.parse(joined.body.toString());
    forged.event = 'participant_left';
    forged.id = `EV_${randomBytes(6).toString('hex')}`;
    const before = await statusOf(api, s.sessionId);
    const res = await post(JSON.stringify(forged), joined.headers.authorization!);
    expect(res.status).to.equal(401);
    expect(res.headers.get('content-type')).to.match(/problem\+json/);
    expect(((await res.json()) as { type: string }).type).to.equal('urn:agent-runtime:problem:bad-webhook-signature');
    const after = await statusOf(api, s.sessionId);
    expect(after.status).to.equal('active');
    expect(after.transitions).to.deep.equal(before.transitions);
    await agent.disconnect();
  });

  it('when an earlier session\'s webhooks are replayed into a room used again, then they are ignored and the running session stays active', async () => {
    const roomName = `desk-${Date.now()}`;
    // The first session in the room: its agent joins, the room closes under it, it ends.
    const first = await activeSession(roomName);
    await livekitClients({ ...api.env, LIVEKIT_URL: livekit.url } as never).rooms.deleteRoom(roomName);
    await until(async () => (await statusOf(api, first.s.sessionId)).status === 'ended');
    await until(async () => eventsOf(roomName, 'room_finished').length > 0 && eventsOf(roomName, 'participant_left').length > 0);
    await first.agent.disconnect().catch(() => undefined);
    const old: ProxiedRequest[] = eventsOf(roomName);
    expect(old.map((r) => JSON.parse(r.body.toString()).event)).to.include.members(['participant_joined', 'participant_left', 'room_finished']);

    // The room, used again by the next session, whose agent is there.
    const second = await activeSession(roomName);
    const before = await statusOf(api, second.s.sessionId);
    // Replayed byte for byte, signatures still valid: as fresh, the agent's leave and the room's end would end the new session.
    for (const r of old) {
      const res = await relay.replay(r);
      expect(res.status, res.body).to.equal(200);
      expect(JSON.parse(res.body)).to.include({ applied: false, duplicate: true });
    }
    const after = await statusOf(api, second.s.sessionId);
    expect(after.status).to.equal('active');
    expect(after.transitions).to.deep.equal(before.transitions);
    await second.agent.disconnect();
  });

  it(`when a signed webhook was made more than ${WEBHOOK_MAX_AGE_SECONDS} s ago (or claims the future), then 401, undated 400, and nothing changes; made now, the same event applies`, async () => {
    const { s, agent } = await activeSession();
    const leave = (createdAt: number) =>
      JSON.stringify({
        event: 'participant_left',
        id: `EV_${randomBytes(6).toString('hex')}`,
        createdAt: String(createdAt),
        room: { name: s.roomName },
        participant: { identity: 'agent-test-old', kind: 'AGENT' },
      });
    const now = Math.floor(Date.now() / 1000);
    for (const createdAt of [now - WEBHOOK_MAX_AGE_SECONDS - 60, now + 3600]) {
      const body = leave(createdAt);
      const res = await post(body, await signWebhook(body));
      expect(res.status, String(createdAt - now)).to.equal(401);
      expect(((await res.json()) as { type: string }).type).to.equal('urn:agent-runtime:problem:stale-webhook');
      expect((await statusOf(api, s.sessionId)).status).to.equal('active');
    }
    // Without a createdAt (or an id) it cannot be checked against replays: refused too.
    const undated = JSON.stringify({ ...JSON.parse(leave(now)), createdAt: undefined });
    const refused = await post(undated, await signWebhook(undated));
    expect(refused.status).to.equal(400);
    expect((await statusOf(api, s.sessionId)).status).to.equal('active');
    // The same event, made now: signed the same way, it is applied (the refusals above were the age's).
    const body = leave(now);
    const res = await post(body, await signWebhook(body));
    expect(res.status).to.equal(200);
    expect(await res.json()).to.include({ applied: true, sessionId: s.sessionId });
    expect((await statusOf(api, s.sessionId)).status).to.equal('ended');
    await agent.disconnect();
  });
});
