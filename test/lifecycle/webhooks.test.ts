import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import { sessionsQueue } from '../../common/queue.js';
import { createRedis } from '../../common/redis.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
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
