import client from 'prom-client';

/**
 * Prometheus metrics shared by the services. Durations are in seconds; label
 * sets are bounded (routes are templates, agents are registered ids, never a
 * session id or a room name).
 */
export function processRegistry(service: 'api' | 'dispatcher' | 'worker'): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ service });
  client.collectDefaultMetrics({ register: registry });
  return registry;
}

/** Cumulative time from the session request to each stage: a dashboard reads where time goes. */
export function stageHistogram(registry: client.Registry) {
  return new client.Histogram({
    name: 'agent_runtime_session_stage_seconds',
    help: 'Seconds from the session request to each stage: accepted (202), dispatched, job_received (worker), session_started, agent_joined',
    labelNames: ['stage'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
}

export { client };
