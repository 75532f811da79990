import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { client, processRegistry, stageHistogram } from '../common/metrics.js';
import type { AvatarResult, JobEvents } from './entry.js';

/**
 * Worker metrics. Jobs run in processes forked by the agent server, so each
 * job process reports what happened to the worker's own metrics server over
 * loopback (`POST /internal/job-events`, with a per-worker token), and the
 * worker serves them all on one `/metrics`.
 */
export const SINK_ENV = 'AGENT_RUNTIME_METRICS_SINK';

export type Stage = 'job_accepted' | 'job_received' | 'session_started';

export type JobEvent =
  /** A job process finished its prewarm and waits for a job. */
  | { type: 'warm'; pid?: number }
  | { type: 'received'; jobId?: string; pid?: number }
  | { type: 'resolved'; tier: string; seconds: number }
  | { type: 'started'; agentId: string; seconds: number; resumed?: boolean }
  | { type: 'ended'; agentId: string; jobId?: string }
  | { type: 'failed'; reason: string }
  | { type: 'avatar'; result: AvatarResult }
  | { type: 'stage'; stage: Stage; seconds: number }
  /** One answered user turn: the user stopped speaking → the agent started, and the parts of it that are known. */
  | { type: 'turn'; seconds: number; parts: Partial<Record<TurnPart, number>> };

/** The parts of a turn's latency the agent session measures (seconds). */
export type TurnPart = 'end_of_turn' | 'llm_ttft' | 'tts_ttfb';
export const TURN_PARTS: readonly TurnPart[] = ['end_of_turn', 'llm_ttft', 'tts_ttfb'];

export function workerRegistry() {
  const registry = processRegistry('worker');
  const stages = stageHistogram(registry);
  const jobs = new client.Counter({ name: 'agent_runtime_worker_jobs_total', help: 'Jobs by outcome: received, accepted (session started), failed', labelNames: ['result', 'reason'], registers: [registry] });
  const jobStart = new client.Histogram({
    name: 'agent_runtime_worker_job_to_session_start_seconds',
    help: 'Time from a job reaching the worker to its agent session started',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [registry],
  });
  const resolution = new client.Histogram({
    name: 'agent_runtime_config_resolution_seconds',
    help: 'Agent config resolution time by the tier that answered',
    labelNames: ['tier'],
    // Fine between 1 and 10 ms, where a Redis read in a job process lands: the p50 is read off these.
    buckets: [0.00005, 0.0001, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const cache = new client.Counter({ name: 'agent_runtime_config_cache_total', help: 'Config resolutions by tier (lru and redis are hits, mongo a miss)', labelNames: ['tier'], registers: [registry] });
  const active = new client.Gauge({ name: 'agent_runtime_worker_active_sessions', help: 'Agent sessions running on this worker, by agent', labelNames: ['agent_id'], registers: [registry] });
  const avatars = new client.Counter({ name: 'agent_runtime_avatar_starts_total', help: 'Avatar starts by result (avatar_not_configured: no BITHUMAN_API_SECRET, none asked for)', labelNames: ['result'], registers: [registry] });
  // Voice-to-voice: what a user waits for an answer. Sub-second buckets, where a runtime's own share lands.
  const turnBuckets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 3, 5, 10];
  const turns = new client.Histogram({
    name: 'agent_runtime_turn_latency_seconds',
    help: 'Voice-to-voice latency of each answered turn: the user stopped speaking (VAD) → the agent started speaking',
    buckets: turnBuckets,
    registers: [registry],
  });
  const turnParts = new client.Histogram({
    name: 'agent_runtime_turn_part_seconds',
    help: 'Parts of a turn\'s latency: end_of_turn (end-of-utterance wait), llm_ttft (first LLM token), tts_ttfb (first TTS audio)',
    labelNames: ['part'],
    buckets: turnBuckets,
    registers: [registry],
  });
  const resumed = new client.Counter({
    name: 'agent_runtime_worker_sessions_resumed_total',
    help: 'Agent sessions that continued a conversation whose earlier agent died (instead of greeting)',
    registers: [registry],
  });

  // Known series exist from the start, so the first event is a rate() step, not a new series.
  for (const result of ['received', 'accepted']) jobs.inc({ result, reason: '' }, 0);
  for (const stage of ['job_accepted', 'job_received', 'session_started'] as const) stages.zero({ stage });
  for (const tier of ['lru', 'redis', 'mongo']) cache.inc({ tier }, 0);
  for (const result of ['started', 'failed', 'avatar_not_configured'] as const) avatars.inc({ result }, 0);
  for (const part of TURN_PARTS) turnParts.zero({ part });

  const apply = (e: JobEvent) => {
    switch (e.type) {
      case 'received':
        jobs.inc({ result: 'received', reason: '' });
        break;
      case 'resolved':
        resolution.observe({ tier: e.tier }, e.seconds);
        cache.inc({ tier: e.tier });
        break;
      case 'started':
        jobs.inc({ result: 'accepted', reason: '' });
        jobStart.observe(e.seconds);
        active.inc({ agent_id: e.agentId });
        if (e.resumed) resumed.inc();
        break;
      case 'ended':
        active.dec({ agent_id: e.agentId });
        break;
      case 'failed':
        jobs.inc({ result: 'failed', reason: e.reason });
        break;
      case 'warm':
        break;
      case 'avatar':
        avatars.inc({ result: e.result });
        break;
      case 'stage':
        stages.observe({ stage: e.stage }, e.seconds);
        break;
      case 'turn':
        turns.observe(e.seconds);
        for (const part of TURN_PARTS) if (e.parts[part] !== undefined) turnParts.observe({ part }, e.parts[part]!);
        break;
    }
  };
  return { registry, apply };
}

export interface WorkerMetricsServer {
  port: number;
  registry: client.Registry;
  /** Records an event seen by the worker process itself. */
  apply(e: JobEvent): void;
  close(): Promise<void>;
}

/**
 * Serves /metrics and the loopback sink; sets the sink's address for job
 * processes to inherit. `onEvent` hears every job process event too.
 */
export async function startMetricsServer(host: string, port: number, onEvent: (e: JobEvent) => void = () => undefined): Promise<WorkerMetricsServer> {
  const { registry, apply: record } = workerRegistry();
  const apply = (e: JobEvent) => {
    record(e);
    onEvent(e);
  };
  const token = randomBytes(16).toString('hex');
  const server = http.createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
      return;
    }
    const loopback = /^(::ffff:)?127\.|^::1$/.test(req.socket.remoteAddress ?? '');
    if (req.method === 'POST' && req.url === '/internal/job-events' && loopback && req.headers['x-sink-token'] === token) {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        try {
          apply(JSON.parse(body) as JobEvent);
          res.writeHead(204).end();
        } catch {
          res.writeHead(400).end();
        }
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const actual = (server.address() as AddressInfo).port;
  process.env[SINK_ENV] = JSON.stringify({ url: `http://127.0.0.1:${actual}/internal/job-events`, token });
  return { port: actual, registry, apply, close: () => new Promise((r) => server.close(() => r())) };
}

/** In a job process: JobEvents that report to the worker's sink (fire and forget). */
export function sinkEvents(): JobEvents & { warm(): void; received(jobId: string): void } {
  let sink: { url: string; token: string } | undefined;
  try {
    sink = JSON.parse(process.env[SINK_ENV] ?? '') as { url: string; token: string };
  } catch {
    sink = undefined;
  }
  // node:http on one kept-alive socket, not fetch: undici's machinery costs a job process milliseconds
  // of CPU per event in the very moments its session is starting.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (target: { url: string; token: string }, body: string) => {
    const req = http.request(target.url, {
      method: 'POST',
      agent,
      headers: { 'x-sink-token': target.token, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', (res) => res.resume());
    req.on('error', () => undefined);
    req.end(body);
  };
  const send = (e: JobEvent) => {
    if (!sink) return;
    const target = sink;
    const body = JSON.stringify(e);
    // After the job's current step: a report never runs inside the step it reports on.
    setImmediate(() => post(target, body));
  };
  return {
    warm: () => send({ type: 'warm', pid: process.pid }),
    received: (jobId) => send({ type: 'received', jobId, pid: process.pid }),
    onResolved: (tier, seconds) => send({ type: 'resolved', tier, seconds }),
    onStarted: (agentId, seconds, resumed) => send({ type: 'started', agentId, seconds, ...(resumed ? { resumed } : {}) }),
    onEnded: (agentId, jobId) => send({ type: 'ended', agentId, jobId }),
    onFailed: (reason) => send({ type: 'failed', reason }),
    onAvatar: (result) => send({ type: 'avatar', result }),
    onStage: (stage, seconds) => send({ type: 'stage', stage, seconds }),
    onTurn: (seconds, parts) => send({ type: 'turn', seconds, parts }),
  };
}
