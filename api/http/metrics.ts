import type { RequestHandler } from 'express';
import { client, processRegistry, stageHistogram } from '../../common/metrics.js';

export function apiMetrics() {
  const registry = processRegistry('api');
  const requests = new client.Counter({ name: 'agent_runtime_http_requests_total', help: 'HTTP requests by method, route template and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new client.Histogram({
    name: 'agent_runtime_http_request_duration_seconds',
    help: 'HTTP request duration by method and route template',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const sessionsRequested = new client.Counter({ name: 'agent_runtime_sessions_requested_total', help: 'Sessions accepted (202), by agent', labelNames: ['agent_id'], registers: [registry] });
  const batchSize = new client.Histogram({ name: 'agent_runtime_batch_size', help: 'Sessions per accepted batch', buckets: [1, 10, 100, 1000, 5000, 10000], registers: [registry] });
  const stages = stageHistogram(registry);
  // Known series exist from the start, so the first event is a rate() step, not a new series.
  for (const stage of ['accepted', 'agent_joined'] as const) stages.zero({ stage });

  /** Labels by the matched route template, so ids never become labels. */
  const middleware: RequestHandler = (req, res, next) => {
    const end = duration.startTimer();
    res.on('finish', () => {
      // Answered before a route matched (401, 429, 404): the mount point, still a template.
      const route = req.route?.path ? `${req.baseUrl}${req.route.path === '/' ? '' : req.route.path}` || '/' : req.baseUrl ? `${req.baseUrl}/*` : 'unmatched';
      end({ method: req.method, route });
      requests.inc({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
  return { registry, middleware, sessionsRequested, batchSize, stages };
}

export type ApiMetrics = ReturnType<typeof apiMetrics>;
