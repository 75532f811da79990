import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queue } from 'bullmq';
import { client, processRegistry, stageHistogram } from '../common/metrics.js';
import type { WorkerCapacity } from '../common/workers/capacity.js';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'] as const;

export function dispatcherMetrics(queues: Queue[], capacity?: WorkerCapacity, historyLag?: () => Promise<{ ms: number; sessions: number }>) {
  const registry = processRegistry('dispatcher');
  if (historyLag) {
    // Read from Redis at scrape time: how far MongoDB's session history is behind the running sessions (cluster-wide).
    let last = { ms: 0, sessions: 0 };
    const read = async () => {
      last = await historyLag().catch(() => last);
      return last;
    };
    new client.Gauge({
      name: 'agent_runtime_session_history_lag_seconds',
      help: 'Age of the oldest session change not yet written to MongoDB (0: the history is complete)',
      registers: [registry],
      async collect() {
        this.set((await read()).ms / 1000);
      },
    });
    new client.Gauge({
      name: 'agent_runtime_session_history_unwritten',
      help: 'Sessions with changes not yet written to MongoDB',
      registers: [registry],
      async collect() {
        this.set((await read()).sessions);
      },
    });
  }
  const dispatchDuration = new client.Histogram({
    name: 'agent_runtime_dispatch_duration_seconds',
    help: 'Time to turn one session job into a LiveKit dispatch (room, lookup, dispatch, record)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const outcomes = new client.Counter({ name: 'agent_runtime_dispatch_outcomes_total', help: 'Session jobs by result and reason', labelNames: ['result', 'reason'], registers: [registry] });
  const retries = new client.Counter({ name: 'agent_runtime_dispatch_retries_total', help: 'Dispatch attempts that failed and will be retried, by reason', labelNames: ['reason'], registers: [registry] });
  const redispatches = new client.Counter({ name: 'agent_runtime_redispatches_total', help: 'Join checks (AGENT_JOIN_TIMEOUT after a job was taken) by outcome: redispatched, failed, joined-or-over', labelNames: ['outcome'], registers: [registry] });
  const queueWait = new client.Histogram({
    name: 'agent_runtime_queue_wait_seconds',
    help: 'Time a session job waited in the queue (after any schedule) before a dispatcher took it',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    registers: [registry],
  });
  const capacityWait = new client.Histogram({
    name: 'agent_runtime_capacity_wait_seconds',
    help: 'Time a session waited for a free worker slot before its dispatch (only sessions that waited)',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const placements = new client.Counter({
    name: 'agent_runtime_placements_total',
    help: 'Sessions placed again, by reason: not_taken (no worker took the job), join_timeout, worker_lost, agent_left',
    labelNames: ['reason'],
    registers: [registry],
  });
  const recoveries = new client.Counter({
    name: 'agent_runtime_recoveries_total',
    help: 'Sessions whose worker died or whose agent left, by outcome: replaced (a new agent is on its way), ended (nobody left in the room), moved_on, alive',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const reason of ['not_taken', 'join_timeout', 'worker_lost', 'agent_left']) placements.inc({ reason }, 0);
  for (const outcome of ['replaced', 'ended']) recoveries.inc({ outcome }, 0);
  if (capacity) {
    // Read from Redis at scrape time: every dispatcher reports the same cluster-wide figures.
    new client.Gauge({
      name: 'agent_runtime_sessions_waiting_for_capacity',
      help: 'Sessions a dispatcher holds back until a worker slot frees (cluster-wide)',
      registers: [registry],
      async collect() {
        try {
          this.set(await capacity.waitingCount());
        } catch {
          /* Redis away: keep the last value */
        }
      },
    });
    new client.Gauge({
      name: 'agent_runtime_worker_slots',
      help: 'Job slots of the live workers (cluster-wide): total, busy, free (less the slots reserved by dispatches not taken yet)',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        try {
          const s = await capacity.summary();
          this.set({ state: 'total' }, s.workers.reduce((a, w) => a + w.capacity, 0));
          this.set({ state: 'busy' }, s.workers.reduce((a, w) => a + w.busy, 0));
          this.set({ state: 'free' }, Math.max(0, s.freeSlots));
        } catch {
          /* Redis away */
        }
      },
    });
    new client.Gauge({
      name: 'agent_runtime_workers_live',
      help: 'Workers whose heartbeat is current (cluster-wide)',
      registers: [registry],
      async collect() {
        try {
          this.set((await capacity.summary()).workers.length);
        } catch {
          /* Redis away */
        }
      },
    });
  }
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
  return { registry, dispatchDuration, outcomes, retries, redispatches, queueWait, stages, capacityWait, placements, recoveries };
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
