import type { Queue } from 'bullmq';
import type { SessionJob, SessionStore } from '../../common/sessions/index.js';

const SAMPLE = 1000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * GET /api/metrics: what Agent-Dashboard shows. Counts come from the
 * sessions' history (caught up with every change made before the request)
 * and the queue; dispatch latency percentiles (request → dispatched, in
 * seconds) from the most recent sessions that got that far.
 */
export async function dashboardSummary(store: SessionStore, queue: Queue<SessionJob>) {
  const [sessions, activeSessionsByAgent, queueCounts, latencies] = await Promise.all([
    store.statusCounts(),
    store.activeByAgent(),
    queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
    store.dispatchLatencies(SAMPLE),
  ]);
  return {
    sessions,
    activeSessionsByAgent,
    queue: { depth: (queueCounts.waiting ?? 0) + (queueCounts.prioritized ?? 0) + (queueCounts.delayed ?? 0), ...queueCounts },
    dispatchLatencySeconds: { sample: latencies.length, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
    at: new Date().toISOString(),
  };
}
