import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { verifySignature, SIGNATURE_HEADER } from '../../common/callbacks.js';
import { livekitClients } from '../../common/livekit.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { freePort } from '../support/mongo-server.js';
import { stack } from '../support/env.js';
import { until } from '../support/sessions.js';

type View = { sessionId: string; status: string; transitions: { status: string; at: string }[]; [k: string]: unknown };

describe('session lifecycle: caps, schedules, re-dispatch, callbacks', function () {
  this.timeout(90_000);
  let api: TestApi;
  let dispatcher: RunningDispatcher | undefined;
  const view = async (id: string): Promise<View> => (await api.call('GET', `/api/sessions/${id}`)).body;

  beforeEach(async () => {
    api = await startTestApi();
  });
  afterEach(async () => {
    await dispatcher?.stop();
    dispatcher = undefined;
    await api.stop();
  });

  it('with maxConcurrentSessions 2, six sessions run at most two at a time and all run in the end', async () => {
    await api.call('POST', '/api/agents/register', agentBody('capped', { maxConcurrentSessions: 2 }));
    dispatcher = await startTestDispatcher(api.env);
    const { sessionIds } = (await api.call('POST', '/api/sessions/batch', { agentId: 'capped', count: 6 })).body as { sessionIds: string[] };
    let maxRunning = 0;
    const ran = new Set<string>();
    const deadline = Date.now() + 60_000;
    while (ran.size < 6 && Date.now() < deadline) {
      const views = await Promise.all(sessionIds.map(view));
      const running = views.filter((v) => v.status === 'dispatched' || v.status === 'active');
      maxRunning = Math.max(maxRunning, running.length);
      for (const v of views) expect(['queued', 'dispatching', 'dispatched', 'ended'], v.status).to.include(v.status);
      // The running ones end; the waiting ones must then start.
      for (const v of running) {
        ran.add(v.sessionId);
        await api.call('DELETE', `/api/sessions/${v.sessionId}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(maxRunning).to.equal(2);
    expect(ran.size).to.equal(6);
    const final = await Promise.all(sessionIds.map(view));
    expect(final.every((v) => v.status === 'ended' && v.transitions.some((t) => t.status === 'dispatched'))).to.equal(true);
  });

  it('a scheduled session stays queued with its time and is dispatched then (within a second)', async () => {
    await api.call('POST', '/api/agents/register', agentBody('later'));
    dispatcher = await startTestDispatcher(api.env);
    const at = new Date(Date.now() + 3000);
    const s = (await api.call('POST', '/api/sessions', { agentId: 'later', scheduledAt: at.toISOString() })).body;
    const cancelMe = (await api.call('POST', '/api/sessions', { agentId: 'later', scheduledAt: at.toISOString() })).body;
    const before = await view(s.sessionId);
    expect(before).to.include({ status: 'queued', scheduledAt: at.toISOString() });
    expect((await api.call('DELETE', `/api/sessions/${cancelMe.sessionId}`)).body.status).to.equal('cancelled');

    const done = await until(async () => {
      const v = await view(s.sessionId);
      return v.status === 'dispatched' ? v : undefined;
    }, 20_000, 50);
    const dispatchedAt = Date.parse(done.transitions.find((t) => t.status === 'dispatched')!.at);
    expect(dispatchedAt - at.getTime()).to.be.within(0, 1000);
    await new Promise((r) => setTimeout(r, 500));
    expect((await view(cancelMe.sessionId)).status).to.equal('cancelled');
    expect((await api.call('POST', '/api/sessions', { agentId: 'later', scheduledAt: 'tomorrow' })).status).to.equal(400);
    expect((await api.call('POST', '/api/sessions', { agentId: 'later', scheduledAt: new Date(Date.now() + 40 * 86400_000).toISOString() })).status).to.equal(400);
  });

  it('with no agent joining, a dispatch is replaced once after AGENT_JOIN_TIMEOUT, then the session fails agent_never_joined', async () => {
    await api.call('POST', '/api/agents/register', agentBody('absent'));
    dispatcher = await startTestDispatcher(api.env, { AGENT_JOIN_TIMEOUT: '2' });
    const s = (await api.call('POST', '/api/sessions', { agentId: 'absent' })).body;
    await until(async () => (await view(s.sessionId)).status === 'dispatched');
    const { dispatch } = livekitClients(stack);
    const firstIds = (await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME).map((d) => d.id);
    expect(firstIds).to.have.length(1);
    const redispatched = await until(async () => {
      const v = await view(s.sessionId);
      return v.redispatches === 1 ? v : undefined;
    }, 15_000);
    expect(redispatched.status).to.equal('dispatched');
    expect(redispatched.dispatchId).to.be.a('string').and.not.equal(firstIds[0]);
    const mine = (await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME).map((d) => d.id);
    expect(mine).to.deep.equal([redispatched.dispatchId]);

    const failed = await until(async () => {
      const v = await view(s.sessionId);
      return v.status === 'failed' ? v : undefined;
    }, 15_000);
    expect(failed.failureReason).to.equal('agent_never_joined');
    expect((await dispatch.listDispatch(s.roomName)).filter((d) => d.agentName === api.env.AGENT_NAME)).to.deep.equal([]);
  });

  it('POSTs every status change to callbackUrl, signed; a dead endpoint never holds a session up', async () => {
    await api.call('POST', '/api/agents/register', agentBody('cb'));
    const received: { status: string; previousStatus: string | null; sessionId: string }[] = [];
    let badSignatures = 0;
    let firstAttempt = true;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (!verifySignature(api.env.CALLBACK_SECRET ?? 'dev-callback-secret-0123456789', body, String(req.headers[SIGNATURE_HEADER]))) badSignatures++;
        // The first delivery fails: it must be retried.
        if (firstAttempt) {
          firstAttempt = false;
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    dispatcher = await startTestDispatcher(api.env);
    try {
      const s = (await api.call('POST', '/api/sessions', { agentId: 'cb', callbackUrl: url })).body;
      const dead = (await api.call('POST', '/api/sessions', { agentId: 'cb', callbackUrl: `http://127.0.0.1:${await freePort()}/gone` })).body;
      await until(async () => (await view(s.sessionId)).status === 'dispatched');
      await api.call('DELETE', `/api/sessions/${s.sessionId}`);
      // The rejected first delivery ("queued") arrives on its retry, after the others.
      await until(async () => received.some((e) => e.status === 'ended') && received.some((e) => e.status === 'queued'), 30_000);
      const statuses = received.filter((e) => e.sessionId === s.sessionId).map((e) => e.status);
      expect(statuses).to.include.members(['queued', 'dispatched', 'ended']);
      expect(received.find((e) => e.status === 'dispatched')!.previousStatus).to.equal('queued');
      expect(badSignatures).to.equal(0);
      await until(async () => (await view(dead.sessionId)).status === 'dispatched');
    } finally {
      server.close();
    }
  });
});
