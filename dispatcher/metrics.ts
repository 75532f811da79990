import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queue } from 'bullmq';
import { client, processRegistry, stageHistogram } from '../common/metrics.js';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'] as const;

export function dispatcherMetrics(queues: Queue[]) {
  const registry = processRegistry('dispatcher');
  const dispatchDuration = new client.Histogram({
    name: 'agent_runtime_dispatch_duration_seconds',
    help: 'Time to turn one session job into a LiveKit dispatch (room, lookup, dispatch, record)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const outcomes = new client.Counter({ name: 'agent_runtime_dispatch_outcomes_total', help: 'Session jobs by result and reason', labelNames: ['result', 'reason'], registers: [registry] });
  const retries = new client.Counter({ name: 'agent_runtime_dispatch_retries_total', help: 'Dispatch attempts that failed and will be retried, by reason', labelNames: ['reason'], registers: [registry] });
  const redispatches = new client.Counter({ name: 'agent_runtime_redispatches_total', help: 'Join checks by outcome (redispatched, failed, joined-or-over)', labelNames: ['outcome'], registers: [registry] });
  const queueWait = new client.Histogram({
    name: 'agent_runtime_queue_wait_seconds',
    help: 'Time a session job waited in the queue (after any schedule) before a dispatcher took it',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    registers: [registry],
  });
  const stages = stageHistogram(registry);
  // Known series exist from the start, so the first event is a rate() step, not a new series.
  stages.zero({ stage: 'dispatched' });
  outcomes.inc({ result: 'dispatched', reason: '' }, 0);
  outcomes.inc({ result: 'failed', reason: 'agent_not_found' }, 0);
  for (const outcome of ['redispatched', 'failed', 'joined-or-over']) redispatches.inc({ outcome }, 0);
  new client.Gauge({
    name: 'agent_runtime_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      for (const q of queues) {
        try {
          const counts = await q.getJobCounts(...STATES);
          for (const state of STATES) this.set({ queue: q.name, state }, counts[state] ?? 0);
        } catch {
          /* Redis away: keep the last values */
        }
      }
    },
  });
  return { registry, dispatchDuration, outcomes, retries, redispatches, queueWait, stages };
}

export type DispatcherMetrics = ReturnType<typeof dispatcherMetrics>;

export async function serveMetrics(registry: client.Registry, host: string, port: number) {
  const server = http.createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}
