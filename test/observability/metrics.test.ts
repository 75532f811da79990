import { expect } from 'chai';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { batchDone } from '../support/sessions.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { sample } from '../support/prometheus-text.js';

describe('metrics', function () {
  this.timeout(60_000);
  let api: TestApi;
  let dispatcher: RunningDispatcher;
  let sessionIds: string[];

  before(async () => {
    api = await startTestApi();
    dispatcher = await startTestDispatcher(api.env);
    await api.call('POST', '/api/agents/register', agentBody('m1'));
    const batch = (await api.call('POST', '/api/sessions/batch', { agentId: 'm1', count: 20 })).body;
    sessionIds = batch.sessionIds;
    await api.call('POST', '/api/sessions', { agentId: 'm1' });
    await batchDone(api, batch.batchId);
    await api.call('GET', `/api/sessions/${sessionIds[0]}`);
  });
  after(async () => {
    await dispatcher.stop();
    await api.stop();
  });

  it('GET /api/metrics sums up sessions by status, active sessions by agent, queue depth and dispatch latency', async () => {
    const res = await api.call('GET', '/api/metrics');
    expect(res.status).to.equal(200);
    expect(res.body.sessions.dispatched).to.be.at.least(20);
    expect(res.body.sessions).to.have.all.keys('queued', 'dispatching', 'dispatched', 'active', 'recovering', 'ended', 'failed', 'cancelled');
    expect(res.body.activeSessionsByAgent).to.deep.equal({});
    expect(res.body.queue.depth).to.be.a('number');
    const lat = res.body.dispatchLatencySeconds;
    expect(lat.sample).to.be.at.least(20);
    expect(lat.p50).to.be.a('number').and.at.most(lat.p99);
    expect((await fetch(`${api.url}/api/metrics`)).status).to.equal(401);
  });

  it('the API exports requests by route template (never an id), stages and sessions by agent', async () => {
    const text = await (await fetch(`${api.url}/metrics`)).text();
    expect(sample(text, 'agent_runtime_http_requests_total', { method: 'POST', route: '/api/sessions/batch', status: '202' })).to.equal(1);
    expect(sample(text, 'agent_runtime_http_requests_total', { method: 'GET', route: '/api/sessions/:id', status: '200' })).to.be.at.least(1);
    expect(sample(text, 'agent_runtime_sessions_requested_total', { agent_id: 'm1', service: 'api' })).to.equal(1);
    expect(sample(text, 'agent_runtime_batch_size_count')).to.equal(1);
    expect(sample(text, 'agent_runtime_session_stage_seconds_count', { stage: 'accepted' })).to.equal(1);
    expect(sample(text, 'process_cpu_seconds_total', { service: 'api' })).to.be.a('number');
    for (const id of sessionIds) expect(text).not.to.include(id);
  });

  it('the dispatcher exports dispatch outcomes, durations, queue states and the dispatched stage', async () => {
    const text = await (await fetch(`http://127.0.0.1:${dispatcher.metricsPort}/metrics`)).text();
    expect(sample(text, 'agent_runtime_dispatch_outcomes_total', { result: 'dispatched', reason: '', service: 'dispatcher' })).to.equal(21);
    expect(sample(text, 'agent_runtime_dispatch_duration_seconds_count')).to.equal(21);
    expect(sample(text, 'agent_runtime_session_stage_seconds_count', { stage: 'dispatched' })).to.equal(21);
    expect(sample(text, 'agent_runtime_queue_jobs', { queue: 'sessions', state: 'waiting' })).to.equal(0);
    expect(sample(text, 'agent_runtime_queue_jobs', { queue: 'join-checks', state: 'delayed' })).to.equal(21);
    expect(sample(text, 'agent_runtime_queue_wait_seconds_count')).to.equal(21);
  });
});
