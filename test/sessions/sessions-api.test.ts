import { expect } from 'chai';
import { Queue } from 'bullmq';
import { livekitClients } from '../../common/livekit.js';
import { SESSIONS_QUEUE } from '../../common/queue.js';
import { HotRecords, newId } from '../../common/sessions/index.js';
import { createRedis, type Redis } from '../../common/redis.js';
import { AccessToken, TokenVerifier } from 'livekit-server-sdk';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { stack } from '../support/env.js';
import { until } from '../support/sessions.js';
import { HoldingProxy } from '../support/holding-proxy.js';

describe('session requests', () => {
  let api: TestApi;
  let redis: Redis;
  let queue: Queue;
  const jobCount = async () => {
    const c = await queue.getJobCounts();
    return Object.values(c).reduce((a, b) => a + b, 0);
  };

  beforeEach(async () => {
    api = await startTestApi();
    redis = createRedis(stack.REDIS_URL);
    queue = new Queue(SESSIONS_QUEUE, { connection: redis, prefix: api.env.QUEUE_PREFIX });
    await api.call('POST', '/api/agents/register', agentBody('7'));
  });
  afterEach(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
    await api.stop();
  });

  it('answers 202 with a room of its own and a token for that room, and the session is readable at once', async () => {
    const res = await api.call('POST', '/api/sessions', { agentId: 7, participant: { identity: 'caller-1', name: 'Caller' }, metadata: { ticket: 42 } });
    expect(res.status).to.equal(202);
    expect(res.body).to.include({ agentId: '7', status: 'queued', livekitUrl: stack.LIVEKIT_URL });
    expect(res.body.roomName).to.match(/^agent-7-room-[a-z0-9]{16}$/);
    expect(res.body.sessionId).to.match(/^ses_[0-9a-z]{21}$/);

    const claims = await new TokenVerifier(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET).verify(res.body.participantToken);
    expect(claims.sub).to.equal('caller-1');
    expect(claims.name).to.equal('Caller');
    expect(claims.video).to.deep.include({ room: res.body.roomName, roomJoin: true });
    expect(claims.video?.roomAdmin).to.not.equal(true);
    expect(claims.exp! - claims.nbf!).to.equal(900);

    const got = await api.call('GET', `/api/sessions/${res.body.sessionId}`);
    expect(got.status).to.equal(200);
    expect(got.body).to.include({ status: 'queued', roomName: res.body.roomName, participantIdentity: 'caller-1' });
    expect(got.body.metadata).to.deep.equal({ ticket: 42 });
    expect(await jobCount()).to.equal(1);
  });

  it('uses the room the caller names', async () => {
    const res = await api.call('POST', '/api/sessions', { agentId: '7', roomName: 'support-desk' });
    expect(res.body.roomName).to.equal('support-desk');
  });

  it('refuses unknown and deleted agents with 404 and queues nothing', async () => {
    expect((await api.call('POST', '/api/sessions', { agentId: 'nobody' })).status).to.equal(404);
    await api.call('DELETE', '/api/agents/7');
    const res = await api.call('POST', '/api/sessions', { agentId: '7' });
    expect(res.status).to.equal(404);
    expect(res.headers.get('content-type')).to.match(/problem\+json/);
    expect(await jobCount()).to.equal(0);
  });

  it('answers bad requests with a 400 naming the field, and queues nothing', async () => {
    const cases: [unknown, string][] = [
      [{}, 'agentId'],
      [{ agentId: { $gt: '' } }, 'agentId'],
      [{ agentId: '7', roomName: '../etc' }, 'roomName'],
      [{ agentId: '7', participant: { identity: 'has space' } }, 'participant.identity'],
      [{ agentId: '7', metadata: { big: 'x'.repeat(9000) } }, 'metadata'],
      [{ agentId: '7', metadata: 'not an object' }, 'metadata'],
      [{ agentId: '7', extra: 1 }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const res = await api.call('POST', '/api/sessions', body);
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(res.body.errors.map((e: { field: string }) => e.field), JSON.stringify(body)).to.include(field);
    }
    expect((await api.call('GET', '/api/sessions/not-an-id')).status).to.equal(400);
    expect((await api.call('GET', '/api/sessions/ses_000000000000000000000')).status).to.equal(404);
    expect(await jobCount()).to.equal(0);
  });

  it('with an Idempotency-Key, repeats return the first answer and queue nothing more; another body is a 409', async () => {
    const headers = { 'idempotency-key': 'order-77' };
    const first = await api.call('POST', '/api/sessions', { agentId: '7' }, headers);
    const again = await api.call('POST', '/api/sessions', { agentId: '7' }, headers);
    expect(first.status).to.equal(202);
    expect(again.status).to.equal(202);
    expect(again.body).to.deep.equal(first.body);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    const other = await api.call('POST', '/api/sessions', { agentId: '7', roomName: 'elsewhere' }, headers);
    expect(other.status).to.equal(409);
    expect(await jobCount()).to.equal(1);
    // A failed first request does not use up the key.
    const bad = await api.call('POST', '/api/sessions', { agentId: 'ghost' }, { 'idempotency-key': 'k2' });
    expect(bad.status).to.equal(404);
    await api.call('POST', '/api/agents/register', agentBody('ghost'));
    expect((await api.call('POST', '/api/sessions', { agentId: 'ghost' }, { 'idempotency-key': 'k2' })).status).to.equal(202);
  });

  it('when twenty cancels of one session race, then exactly one cancels it and the others answer 409', async () => {
    const res = await api.call('POST', '/api/sessions', { agentId: '7' });
    // Every status move is one script in Redis: concurrent moves of a session cannot interleave.
    const answers = await Promise.all(Array.from({ length: 20 }, () => api.call('DELETE', `/api/sessions/${res.body.sessionId}`)));
    expect(answers.map((a) => a.status).sort()).to.deep.equal([200, ...Array(19).fill(409)]);
    const view = (await api.call('GET', `/api/sessions/${res.body.sessionId}`)).body;
    expect(view.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'cancelled']);
  });

  it('cancels a queued session: it is never dispatched', async () => {
    const res = await api.call('POST', '/api/sessions', { agentId: '7' });
    const cancelled = await api.call('DELETE', `/api/sessions/${res.body.sessionId}`);
    expect(cancelled.status).to.equal(200);
    expect(cancelled.body.status).to.equal('cancelled');
    expect(cancelled.body.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'cancelled']);
    expect((await api.call('DELETE', `/api/sessions/${res.body.sessionId}`)).status).to.equal(409);

    const d = await startTestDispatcher(api.env);
    try {
      const other = await api.call('POST', '/api/sessions', { agentId: '7' });
      await until(async () => (await api.call('GET', `/api/sessions/${other.body.sessionId}`)).body.status === 'dispatched');
      // A dispatch would have created the room.
      const { rooms } = livekitClients(stack);
      expect(await rooms.listRooms([res.body.roomName])).to.deep.equal([]);
      expect((await api.call('GET', `/api/sessions/${res.body.sessionId}`)).body.status).to.equal('cancelled');
    } finally {
      await d.stop();
    }
  });

  it('dispatches a session exactly once, with the agent id in the dispatch metadata, and ends it on DELETE', async () => {
    const d = await startTestDispatcher(api.env);
    try {
      const res = await api.call('POST', '/api/sessions', { agentId: '7', metadata: { agentId: 'spoofed', lang: 'de' } });
      const s = await until(async () => {
        const g = await api.call('GET', `/api/sessions/${res.body.sessionId}`);
        return g.body.status === 'dispatched' ? g.body : undefined;
      });
      expect(s.transitions.map((t: { status: string }) => t.status)).to.deep.equal(['queued', 'dispatched']);
      expect(s.configVersion).to.equal(1);
      expect(s.attempts).to.equal(1);
      const { dispatch, rooms } = livekitClients(stack);
      // The room holds our dispatch and nothing else (no default dispatch for unnamed agents).
      const listed = await dispatch.listDispatch(res.body.roomName);
      expect(listed.map((x) => x.agentName)).to.deep.equal([api.env.AGENT_NAME]);
      expect(JSON.parse(listed[0]!.metadata)).to.deep.equal({ agentId: '7', lang: 'de', sessionId: res.body.sessionId, configVersion: 1, requestedAt: s.requestedAt });

      const ended = await api.call('DELETE', `/api/sessions/${res.body.sessionId}`);
      expect(ended.status).to.equal(200);
      expect(ended.body.status).to.equal('ended');
      expect(await rooms.listRooms([res.body.roomName])).to.deep.equal([]);

      const list = await api.call('GET', '/api/sessions?agentId=7&status=ended');
      expect(list.body.items.map((x: { sessionId: string }) => x.sessionId)).to.deep.equal([res.body.sessionId]);
    } finally {
      await d.stop();
    }
  });

  it('ends a dispatched session whose room LiveKit already closed, without a 503', async () => {
    const d = await startTestDispatcher(api.env);
    try {
      const res = await api.call('POST', '/api/sessions', { agentId: '7' });
      await until(async () => (await api.call('GET', `/api/sessions/${res.body.sessionId}`)).body.status === 'dispatched');
      await livekitClients(stack).rooms.deleteRoom(res.body.roomName);
      const ended = await api.call('DELETE', `/api/sessions/${res.body.sessionId}`);
      expect(ended.status).to.equal(200);
      expect(ended.body.status).to.equal('ended');
    } finally {
      await d.stop();
    }
  });

  it("ends a dispatched session on DELETE even when the agent's job records the room's close first", async () => {
    // LiveKit's answer to the API's DeleteRoom is held: the room is gone, and meanwhile the agent's job, which saw
    // its room close, records the end as a worker does (no reason of its own).
    const proxy = await HoldingProxy.start(stack.LIVEKIT_URL);
    const viaProxy = await startTestApi({ LIVEKIT_URL: proxy.url.replace(/^http/, 'ws'), QUEUE_PREFIX: api.env.QUEUE_PREFIX!, MONGODB_URI: api.env.MONGODB_URI!, AGENT_NAME: api.env.AGENT_NAME! });
    const d = await startTestDispatcher(api.env);
    try {
      const res = await api.call('POST', '/api/sessions', { agentId: '7' });
      await until(async () => (await api.call('GET', `/api/sessions/${res.body.sessionId}`)).body.status === 'dispatched');
      const held = proxy.hold('RoomService/DeleteRoom', 'answer');
      const cancel = viaProxy.call('DELETE', `/api/sessions/${res.body.sessionId}`);
      await held.arrived;
      expect(await new HotRecords(redis, api.env.QUEUE_PREFIX!).move(res.body.sessionId, 'ended', { endedAt: new Date(), durationSeconds: 0 }), "the job's end").not.to.equal(undefined);
      await held.release();
      const ended = await cancel;
      expect(ended.status, JSON.stringify(ended.body)).to.equal(200);
      expect(ended.body.status).to.equal('ended');
      expect(await livekitClients(stack).rooms.listRooms([res.body.roomName])).to.deep.equal([]);
      // A second DELETE finds it over.
      expect((await api.call('DELETE', `/api/sessions/${res.body.sessionId}`)).status).to.equal(409);
    } finally {
      await d.stop();
      await viaProxy.stop();
      await proxy.close();
    }
  });

  describe('config versions', () => {
    const dispatchedMetadata = async (roomName: string) => {
      const listed = await livekitClients(stack).dispatch.listDispatch(roomName);
      expect(listed.map((x) => x.agentName)).to.deep.equal([api.env.AGENT_NAME]);
      return JSON.parse(listed[0]!.metadata) as { configVersion?: number };
    };
    const dispatched = (id: string) =>
      until(async () => {
        const g = await api.call('GET', `/api/sessions/${id}`);
        return g.body.status === 'dispatched' ? g.body : undefined;
      });

    it("pins the agent's version at request time: the record and the job carry it, and the dispatch names it whatever the agent became since", async () => {
      const asked = await api.call('POST', '/api/sessions', { agentId: '7' });
      expect((await api.call('GET', `/api/sessions/${asked.body.sessionId}`)).body).to.include({ status: 'queued', configVersion: 1 });
      expect((await queue.getJob(asked.body.sessionId))!.data.configVersion).to.equal(1);

      expect((await api.call('PATCH', '/api/agents/7', { instructions: 'changed' })).body.version).to.equal(2);
      const after = await api.call('POST', '/api/sessions', { agentId: '7' });
      const named = await api.call('POST', '/api/sessions', { agentId: 7, version: 1 });
      expect(named.status).to.equal(202);
      expect((await api.call('GET', `/api/sessions/${after.body.sessionId}`)).body.configVersion).to.equal(2);
      expect((await api.call('GET', `/api/sessions/${named.body.sessionId}`)).body.configVersion).to.equal(1);
      expect((await queue.getJob(named.body.sessionId))!.data.configVersion).to.equal(1);

      const d = await startTestDispatcher(api.env);
      try {
        for (const [s, version] of [
          [asked.body, 1],
          [after.body, 2],
          [named.body, 1],
        ] as const) {
          expect((await dispatched(s.sessionId)).configVersion, s.sessionId).to.equal(version);
          expect((await dispatchedMetadata(s.roomName)).configVersion, s.sessionId).to.equal(version);
          await api.call('DELETE', `/api/sessions/${s.sessionId}`);
        }
      } finally {
        await d.stop();
      }
    });

    it('a session placed again (its agent never joined) keeps its version in the new dispatch', async () => {
      const asked = (await api.call('POST', '/api/sessions', { agentId: '7' })).body;
      await api.call('PATCH', '/api/agents/7', { instructions: 'changed' });
      const d = await startTestDispatcher(api.env, { AGENT_JOIN_TIMEOUT: '2' });
      try {
        const first = await dispatched(asked.sessionId);
        const again = await until(async () => {
          const v = (await api.call('GET', `/api/sessions/${asked.sessionId}`)).body;
          return v.redispatches === 1 ? v : undefined;
        }, 15_000);
        expect(again.dispatchId).to.be.a('string').and.not.equal(first.dispatchId);
        const listed = (await livekitClients(stack).dispatch.listDispatch(asked.roomName)).filter((x) => x.id === again.dispatchId);
        expect(JSON.parse(listed[0]!.metadata)).to.include({ configVersion: 1 });
        expect(again.configVersion).to.equal(1);
        await api.call('DELETE', `/api/sessions/${asked.sessionId}`);
      } finally {
        await d.stop();
      }
    });

    it('a job queued without a version (before jobs carried one) is dispatched with the current version', async () => {
      await api.call('PATCH', '/api/agents/7', { instructions: 'changed' });
      const sessionId = newId('ses');
      const roomName = `agent-7-room-${sessionId.slice(4, 20)}`;
      await queue.add('session', { sessionId, agentId: '7', roomName, participantIdentity: 'old-client', requestedAt: new Date().toISOString() }, { jobId: sessionId });
      const d = await startTestDispatcher(api.env);
      try {
        expect((await dispatched(sessionId)).configVersion).to.equal(2);
        expect((await dispatchedMetadata(roomName)).configVersion).to.equal(2);
        await api.call('DELETE', `/api/sessions/${sessionId}`);
      } finally {
        await d.stop();
      }
    });

    it('an unknown version is a 404 naming `version` for one session and a 400 naming the item for a batch; a bad one is a 400; nothing is queued', async () => {
      const one = await api.call('POST', '/api/sessions', { agentId: '7', version: 2 });
      expect(one.status).to.equal(404);
      expect(one.headers.get('content-type')).to.match(/problem\+json/);
      expect(one.body.errors).to.deep.equal([{ field: 'version', message: 'no version 2 of this agent' }]);
      for (const version of [0, 1.5, '1', -1]) {
        const bad = await api.call('POST', '/api/sessions', { agentId: '7', version });
        expect(bad.status, String(version)).to.equal(400);
        expect(bad.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['version']);
      }
      const items = await api.call('POST', '/api/sessions/batch', { sessions: [{ agentId: '7', version: 1 }, { agentId: '7', version: 5 }, { agentId: '7' }] });
      expect(items.status).to.equal(400);
      expect(items.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['sessions.1.version']);
      const counted = await api.call('POST', '/api/sessions/batch', { agentId: '7', count: 3, version: 5 });
      expect(counted.status).to.equal(400);
      expect(counted.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['version', 'version', 'version']);
      expect(await jobCount()).to.equal(0);
    });

    it('batches pin versions per item: a named one, else the current one', async () => {
      await api.call('PATCH', '/api/agents/7', { instructions: 'changed' });
      const items = await api.call('POST', '/api/sessions/batch', { sessions: [{ agentId: '7', version: 1 }, { agentId: '7' }] });
      expect(items.status).to.equal(202);
      const counted = await api.call('POST', '/api/sessions/batch', { agentId: '7', count: 2, version: 1 });
      expect(counted.status).to.equal(202);
      const versions = async (ids: string[]) => Promise.all(ids.map(async (id) => (await api.call('GET', `/api/sessions/${id}`)).body.configVersion));
      expect(await versions(items.body.sessionIds)).to.deep.equal([1, 2]);
      expect(await versions(counted.body.sessionIds)).to.deep.equal([1, 1]);
      const jobs = await Promise.all(counted.body.sessionIds.map((id: string) => queue.getJob(id)));
      expect(jobs.map((j) => j!.data.configVersion)).to.deep.equal([1, 1]);
    });
  });

  it('fails a queued session whose agent was deleted before dispatch', async () => {
    const res = await api.call('POST', '/api/sessions', { agentId: '7' });
    await api.call('DELETE', '/api/agents/7');
    const d = await startTestDispatcher(api.env);
    try {
      const s = await until(async () => {
        const g = await api.call('GET', `/api/sessions/${res.body.sessionId}`);
        return g.body.status === 'failed' ? g.body : undefined;
      });
      expect(s.failureReason).to.equal('agent_not_found');
    } finally {
      await d.stop();
    }
  });
});
