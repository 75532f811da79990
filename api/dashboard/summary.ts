import type { Queue } from 'bullmq';
import { translateOutages } from '../../common/errors.js';
import type { SessionModels } from '../../common/sessions/model.js';
import { SESSION_STATUSES, type SessionJob, type SessionStatus } from '../../common/sessions/schema.js';

const SAMPLE = 1000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * GET /api/metrics: what Agent-Dashboard shows. Counts come from MongoDB and
 * the queue; dispatch latency percentiles (request → dispatched, in seconds)
 * from the most recent sessions that got that far.
 */
export function dashboardSummary(models: SessionModels, queue: Queue<SessionJob>) {
  return translateOutages(async () => {
    const [byStatus, activeByAgent, queueCounts, recent] = await Promise.all([
      models.Session.aggregate<{ _id: SessionStatus; n: number }>([{ $group: { _id: '$status', n: { $sum: 1 } } }]),
      models.Session.aggregate<{ _id: string; n: number }>([{ $match: { status: 'active' } }, { $group: { _id: '$agentId', n: { $sum: 1 } } }]),
      queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
      models.Session.find({ status: { $in: ['dispatched', 'active', 'ended'] } }, { requestedAt: 1, transitions: 1 })
        .sort({ _id: -1 })
        .limit(SAMPLE)
        .lean(),
    ]);
    const sessions = Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as Record<SessionStatus, number>;
    for (const g of byStatus) if (g._id in sessions) sessions[g._id] = g.n;
    const latencies = recent
      .map((s) => {
        const at = s.transitions?.find((t) => t.status === 'dispatched')?.at;
        return at ? (new Date(at).getTime() - new Date(s.requestedAt).getTime()) / 1000 : undefined;
      })
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    return {
      sessions,
      activeSessionsByAgent: Object.fromEntries(activeByAgent.map((g) => [g._id, g.n])),
      queue: { depth: (queueCounts.waiting ?? 0) + (queueCounts.prioritized ?? 0) + (queueCounts.delayed ?? 0), ...queueCounts },
      dispatchLatencySeconds: { sample: latencies.length, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
      at: new Date().toISOString(),
    };
  });
}
