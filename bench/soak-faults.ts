/**
 * 6b. Soak with faults: ten minutes at 10 sessions/s during which Redis,
 * MongoDB and LiveKit are each restarted once and a dispatcher and an agent
 * worker are each killed once. Every accepted session must end up ended,
 * failed (with its reason) or cancelled: none lost, none dispatched twice;
 * request latency outside the fault windows stays as it was before the first
 * one, and memory stays flat.
 *
 * Unlike the other sections it runs on servers of its own (Redis, MongoDB,
 * LiveKit on free loopback ports), the only ones it restarts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { OwnLivekit } from '../test/support/livekit-server.js';
import { OwnMongo } from '../test/support/mongo-server.js';
import { OwnRedis } from '../test/support/redis-server.js';
import { livekitClients } from '../common/livekit.js';
import { sessionIdOf, TERMINAL_STATUSES } from '../common/sessions/index.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, BENCH_API_KEY, call, isolatedEnv, mongoUri } from './lib/env.js';
import { promValue, scrape } from './lib/prom.js';
import { fmt, type Section } from './lib/report.js';
import { median, percentile, pool } from './lib/stats.js';
import { spawnWorker, type WorkerProcess } from './lib/worker.js';

/** BENCH_SOAK_FAULTS_SECONDS shortens the run (development only; the run is then partial). */
export const SOAK_FAULTS_SECONDS = Number(process.env.BENCH_SOAK_FAULTS_SECONDS ?? 600);
export const SOAK_FAULTS_DEFAULT_SECONDS = 600;

const RATE = 10;
/** When the five faults start, as shares of the run (Redis, MongoDB, LiveKit, a dispatcher, a worker). */
const FAULT_SHARES = [0.1, 0.25, 0.4, 0.55, 0.7] as const;
/**
 * One request in this many is the voice tenant's (0.25/s), the rest the control tenant's (9.75/s). At 1/s
 * most voice sessions never had their agent within 90 s (120 s development runs); at 0.5/s the full run's
 * voice sessions took a median 23 s to get their agent, so each held a slot for about half a minute, the
 * two workers' 12 slots were full from the middle of the run on, and none of the last two minutes' sessions
 * had an agent: the run measured two cores' overload rather than the faults.
 */
const VOICE_EVERY = 40;
const VOICE_RATE = RATE / VOICE_EVERY;
const CONTROL_RATE = RATE - VOICE_RATE;
const WARM_S = 10;
/** How long a voice session is held once its agent is in, and a control session after its 202. */
const VOICE_HOLD_MS = 4000;
const CONTROL_HOLD_MS = 2000;
const POLL_MS = 500;
/** A voice session not active by then is ended anyway (and counted). */
const VOICE_ACTIVE_WAIT_MS = 90_000;
/** Above CONTROL_HOLD_MS so the join check does not fire before the user hangs up. */
const CONTROL_JOIN_TIMEOUT_S = 30;
const VOICE_JOIN_TIMEOUT_S = 15;
const REQUEST_TIMEOUT_MS = 30_000;
const SAMPLE_EVERY_MS = 5000;
/** A fault window lasts until this long after the service is back. */
const SETTLE_S = 15;
/** Rows of the windows table: 30 s in the full run. */
const windowS = Math.max(5, Math.round(SOAK_FAULTS_SECONDS / 20));
const DRAIN_S = 120 + Math.max(CONTROL_JOIN_TIMEOUT_S, VOICE_JOIN_TIMEOUT_S);
const TARGET_LATENCY_RATIO = 1.5;
const TARGET_RSS_RATIO = 1.5;
const WORKERS = 2;
const IDLE_PROCESSES = 3;
const TERMINAL: readonly string[] = TERMINAL_STATUSES;

type Log = (m: string) => void;
type Tenant = 'voice' | 'control';
type Outcome = '202' | '503' | 'other' | 'timeout';

interface Post {
  tenant: Tenant;
  /** Seconds since the start of the measured run when it was sent (negative: warm-up). */
  at: number;
  ms: number;
  outcome: Outcome;
  status?: number;
  sessionId?: string;
}

interface Fault {
  name: string;
  /** One word, for the windows table. */
  short: string;
  /** Seconds since the start of the run. */
  start: number;
  /** When the service was back (the new process ready). */
  back?: number;
}

interface Sample {
  at: number;
  rss: Partial<Record<string, number>>;
  /** The voice tenant's capacity as its dispatcher reports it (cluster-wide, from Redis). */
  slots?: { total: number; busy: number; free: number; waiting: number; workers: number };
}

interface SessionEnd {
  status?: string;
  failureReason?: string;
  dispatchedTransitions: number;
  activeTransitions: number;
  /** Agent jobs the session may have had: one per placement generation (a claim per generation at most). */
  placements: number;
  notFound: boolean;
}

const MiB = (b: number) => fmt(b / 2 ** 20);

/** One authenticated call with a timeout; network errors and timeouts answer status 0. */
async function http(baseUrl: string, method: string, path: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<{ status: number; body: any }> {
  try {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${BENCH_API_KEY}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' ? { body: '{"agentId":"bench"}' } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    return { status: res.status, body };
  } catch (err) {
    return { status: 0, body: (err as Error).name === 'TimeoutError' ? 'timeout' : (err as Error).message };
  }
}

export async function benchSoakFaults(_runs: number, log: Log): Promise<Section> {
  const duration = SOAK_FAULTS_SECONDS;
  if (!Number.isFinite(duration) || duration < 100) throw new Error('BENCH_SOAK_FAULTS_SECONDS must be at least 100 (every fault needs its window)');
  let redis: OwnRedis | undefined;
  let mongo: OwnMongo | undefined;
  let livekit: OwnLivekit | undefined;
  let fakes: ChildServer | undefined;
  const apis: Partial<Record<Tenant, ChildServer>> = {};
  const dispatchers: Partial<Record<Tenant, ChildServer>> = {};
  const workers: (WorkerProcess | undefined)[] = [];
  const posts: Post[] = [];
  const faults: Fault[] = [];
  const samples: Sample[] = [];
  const notes: string[] = [];
  const extra: string[] = [];
  let figures: Section['figures'] = [];
  /** Sessions accepted and not yet over, by the client's own account (what "in flight" means below). */
  const open: Record<Tenant, Set<string>> = { voice: new Set(), control: new Set() };
  /** Agent jobs per voice session (distinct job ids of the worker's 'agent config resolved' lines). */
  const jobsOf = new Map<string, Set<string>>();
  /** What went wrong on the client side, counted (DELETE retries, voice sessions never active, …). */
  const clientEvents: Record<string, number> = {};
  /** Per session: its agent dispatches in its room (LiveKit's list, as the tests count them), read while it is held. */
  const dispatchCount = new Map<string, number>();
  const workerEvents: string[] = [];
  const workerWarnings: Record<string, number> = {};
  const count = (what: string) => void (clientEvents[what] = (clientEvents[what] ?? 0) + 1);
  /** Each voice session: when it was sent and when the client saw it active (run seconds). */
  const voice = new Map<string, { sent: number; active?: number }>();
  let started = 0;
  const now = () => (performance.now() - started) / 1000;

  try {
    // Own servers: the bench restarts these and no other.
    redis = await OwnRedis.start('everysec');
    mongo = await OwnMongo.start();
    livekit = await OwnLivekit.start();
    const env = (tenant: Tenant, overrides: Record<string, string>) => {
      const e = isolatedEnv(`soakf-${tenant}`, overrides);
      return { ...e, REDIS_URL: redis!.url, MONGODB_URI: mongoUri(e.QUEUE_PREFIX!, mongo!.uri), LIVEKIT_URL: livekit!.url };
    };
    const envs: Record<Tenant, Record<string, string>> = {
      voice: env('voice', { AGENT_JOIN_TIMEOUT: String(VOICE_JOIN_TIMEOUT_S) }),
      // No worker serves this agent name: immediate dispatches, hung up 2 s after the 202.
      control: env('control', { DISPATCH_MODE: 'immediate', AGENT_JOIN_TIMEOUT: String(CONTROL_JOIN_TIMEOUT_S), ROOM_EMPTY_TIMEOUT: '10' }),
    };
    fakes = await startChild('fakes.ts', {});
    const providers = JSON.parse(fakes.url) as { openai: string; deepgram: string };
    for (const t of ['voice', 'control'] as const) {
      apis[t] = await startChild('api.ts', { ...envs[t], LOG_LEVEL: 'error' });
      await call(apis[t]!.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
      dispatchers[t] = await startChild('dispatcher.ts', envs[t]);
    }
    const workerEnv = {
      ...envs.voice,
      LOG_LEVEL: 'info',
      WORKER_HOST: '127.0.0.1',
      WORKER_HEALTH_PORT: '0',
      WORKER_METRICS_PORT: '0',
      // Slots and CPU guard as the product derives them (3 slots per core): a starved worker takes no more
      // jobs and the dispatcher holds sessions back, as deployed.
      WORKER_IDLE_PROCESSES: String(IDLE_PROCESSES),
      OPENAI_API_KEY: 'sk-bench',
      OPENAI_BASE_URL: providers.openai,
      DEEPGRAM_API_KEY: 'dg-bench',
      DEEPGRAM_BASE_URL: providers.deepgram,
    };
    const onWorkerLine = (line: string) => {
      if (!line.startsWith('{')) return;
      try {
        const j = JSON.parse(line) as { sessionId?: string; jobId?: string; level?: number; msg?: string };
        if (j.msg === 'registered worker') workerEvents.push(started ? `registered at ${fmt(now())} s` : 'registered');
        // Warnings and errors of the workers and their jobs, by message: what the faults did to them.
        if ((j.level ?? 0) >= 40) workerWarnings[String(j.msg).slice(0, 120)] = (workerWarnings[String(j.msg).slice(0, 120)] ?? 0) + 1;
        if (j.msg !== 'agent config resolved' || !j.sessionId || !j.jobId) return;
        const s = jobsOf.get(j.sessionId) ?? new Set<string>();
        s.add(j.jobId);
        jobsOf.set(j.sessionId, s);
      } catch {
        /* not a line of ours */
      }
    };
    const startWorker = () => spawnWorker(workerEnv, onWorkerLine);
    const { dispatch } = livekitClients({ LIVEKIT_URL: livekit.url, LIVEKIT_API_KEY: envs.voice.LIVEKIT_API_KEY!, LIVEKIT_API_SECRET: envs.voice.LIVEKIT_API_SECRET! });
    /** The session's dispatches in its room, as test/support/sessions.ts's expectExactlyOneDispatchEach counts them. */
    const countDispatches = async (tenant: Tenant, id: string, room: string) => {
      try {
        const all = await Promise.race([dispatch.listDispatch(room), sleep(5000).then(() => Promise.reject(new Error('timeout')))]);
        dispatchCount.set(id, all.filter((d) => d.agentName === envs[tenant].AGENT_NAME && sessionIdOf(d.metadata) === id).length);
      } catch {
        count(`${tenant} dispatches not countable (LiveKit list failed)`);
      }
    };
    for (let i = 0; i < WORKERS; i++) workers.push(await startWorker());
    // Their warm job processes start before the load does.
    await sleep(5000);

    /** A session's life as its user lives it: requested, held, hung up (retried until it is over). */
    const hangUp = async (tenant: Tenant, id: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await http(apis[tenant]!.url, 'DELETE', `/api/sessions/${id}`);
        // 409: already over (or changed meanwhile: looked at again); 404 is counted and left to the drain.
        if (r.status === 200) break;
        if (r.status === 409 && /already/.test(String(r.body?.detail ?? ''))) {
          // Over before the DELETE could end it (its agent saw the room close first, say): counted, not retried.
          count(`${tenant} DELETE 409 (${String(r.body.detail)})`);
          break;
        }
        if (r.status === 404) {
          count(`${tenant} DELETE 404`);
          break;
        }
        count(`${tenant} DELETE retried after ${r.status || 'no answer'}`);
        await sleep(Math.min(5000, 500 * (attempt + 1)));
      }
      open[tenant].delete(id);
    };
    const voiceSession = async (id: string, room: string) => {
      const deadline = performance.now() + VOICE_ACTIVE_WAIT_MS;
      let seen = 'no answer';
      for (;;) {
        await sleep(POLL_MS);
        const r = await http(apis.voice!.url, 'GET', `/api/sessions/${id}`);
        const status = r.status === 200 ? String(r.body.status) : undefined;
        if (status) seen = `${status}${r.body.waitingFor ? ` waiting for ${r.body.waitingFor}` : ''}${r.body.placement?.jobId ? ', job taken' : ''}`;
        if (status === 'active') {
          voice.get(id)!.active = now();
          await countDispatches('voice', id, room);
          await sleep(VOICE_HOLD_MS);
          break;
        }
        if (status && TERMINAL.includes(status)) {
          count(`voice session ${status} before active`);
          open.voice.delete(id);
          return;
        }
        if (performance.now() > deadline) {
          count(`voice session not active within ${VOICE_ACTIVE_WAIT_MS / 1000} s (last seen ${seen})`);
          break;
        }
      }
      await hangUp('voice', id);
    };
    const request = async (tenant: Tenant, at: number) => {
      const t = performance.now();
      const r = await http(apis[tenant]!.url, 'POST', '/api/sessions');
      const ms = performance.now() - t;
      const outcome: Outcome = r.status === 202 ? '202' : r.status === 503 ? '503' : r.status === 0 && r.body === 'timeout' ? 'timeout' : 'other';
      const id = outcome === '202' ? (r.body.sessionId as string) : undefined;
      const room = String(r.body?.roomName ?? '');
      posts.push({ tenant, at, ms, outcome, status: r.status, ...(id ? { sessionId: id } : {}) });
      if (!id) return;
      open[tenant].add(id);
      if (tenant === 'voice') {
        voice.set(id, { sent: at });
        await voiceSession(id, room);
      }
      else {
        await sleep(CONTROL_HOLD_MS);
        await countDispatches('control', id, room);
        await hangUp('control', id);
      }
    };

    /** Open loop from `from` to `to` (run seconds): every 1/RATE s per tenant, whatever the earlier ones do. */
    const load = async (from: number, to: number) => {
      const flows: Promise<void>[] = [];
      const n = Math.round((to - from) * RATE);
      for (let i = 0; i < n; i++) {
        const at = from + i / RATE;
        const wait = (at - now()) * 1000;
        if (wait > 0) await sleep(wait);
        flows.push(request(i % VOICE_EVERY === 0 ? 'voice' : 'control', at));
        if (i % (60 * RATE) === 0 && at >= 0) progress(at);
      }
      return flows;
    };
    const progress = (at: number) => {
      const recent = posts.filter((p) => p.at >= at - 60 && p.at < at);
      log(`    ${at.toFixed(0)} s: last minute ${recent.length} requests, ${recent.filter((p) => p.outcome === '202').length} accepted, p99 ${fmt(percentile(recent.map((p) => p.ms), 99))} ms; open: voice ${open.voice.size}, control ${open.control.size}`);
    };

    const metricsUrls = (): [string, string][] => [
      ['api voice', `${apis.voice!.url}/metrics`],
      ['api control', `${apis.control!.url}/metrics`],
      ['dispatcher voice', dispatchers.voice!.url],
      ['dispatcher control', dispatchers.control!.url],
      ...workers.flatMap((w, i): [string, string][] => (w ? [[`worker ${i + 1}`, `http://127.0.0.1:${w.metricsPort}/metrics`]] : [])),
    ];
    const sample = async () => {
      const at = now();
      const rss: Sample['rss'] = {};
      await Promise.all(
        metricsUrls().map(async ([who, url]) => {
          try {
            rss[who] = promValue(await scrape(url), 'process_resident_memory_bytes');
          } catch {
            /* a process being restarted: no sample */
          }
        }),
      );
      let slots: Sample['slots'];
      try {
        const d = await scrape(dispatchers.voice!.url);
        const v = (name: string, labels: Record<string, string> = {}) => promValue(d, name, labels);
        slots = {
          total: v('agent_runtime_worker_slots', { state: 'total' }),
          busy: v('agent_runtime_worker_slots', { state: 'busy' }),
          free: v('agent_runtime_worker_slots', { state: 'free' }),
          waiting: v('agent_runtime_sessions_waiting_for_capacity'),
          workers: v('agent_runtime_workers_live'),
        };
      } catch {
        /* being restarted */
      }
      samples.push({ at, rss, ...(slots ? { slots } : {}) });
    };

    // The faults, at fixed shares of the run so that a shortened one has every one of them.
    const faultAt = (share: number) => Math.round(duration * share);
    const fault = async (short: string, name: string, share: number, run: () => Promise<void>) => {
      const wait = (faultAt(share) - now()) * 1000;
      if (wait > 0) await sleep(wait);
      const f: Fault = { name, short, start: now() };
      faults.push(f);
      log(`  fault at ${f.start.toFixed(1)} s: ${name}`);
      await run();
      f.back = now();
      log(`  fault ${name}: back at ${f.back.toFixed(1)} s`);
    };
    const inFlightTenant = (): Tenant => (open.voice.size > open.control.size ? 'voice' : 'control');
    let killedDispatcher: Tenant | undefined;
    const faultPlan = async () => {
      await fault('Redis', 'Redis SIGKILLed, started again from its AOF after 5 s', FAULT_SHARES[0], async () => {
        await redis!.down('SIGKILL');
        await sleep(5000);
        await redis!.up();
      });
      await fault('MongoDB', 'MongoDB stopped (SIGKILL) for 10 s, started again', FAULT_SHARES[1], async () => {
        await mongo!.down();
        await sleep(10_000);
        await mongo!.up();
      });
      await fault('LiveKit', 'LiveKit stopped (SIGKILL) for 10 s, started again', FAULT_SHARES[2], async () => {
        await livekit!.down();
        await sleep(10_000);
        await livekit!.up();
      });
      await fault('dispatcher', 'a dispatcher SIGKILLed, a new one started 2 s later', FAULT_SHARES[3], async () => {
        const t = inFlightTenant();
        killedDispatcher = t;
        faults.at(-1)!.name = `the ${t} tenant's dispatcher SIGKILLed (open sessions: voice ${open.voice.size}, control ${open.control.size}), a new one started 2 s later`;
        process.kill(dispatchers[t]!.pid, 'SIGKILL');
        await dispatchers[t]!.stop(); // reaps it
        await sleep(2000);
        dispatchers[t] = await startChild('dispatcher.ts', envs[t]);
      });
      await fault('worker', 'worker 1 SIGKILLed with its job processes, started again 5 s later', FAULT_SHARES[4], async () => {
        const w = workers[0]!;
        workers[0] = undefined;
        try {
          process.kill(-w.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await w.kill(0);
        await sleep(5000);
        workers[0] = await startWorker();
      });
    };

    log(`  warm-up: ${WARM_S} s at ${RATE}/s (latency discarded, sessions counted)`);
    started = performance.now() + WARM_S * 1000;
    const warmFlows = await load(-WARM_S, 0);
    log(`  soak with faults: ${duration} s at ${VOICE_RATE}/s voice + ${CONTROL_RATE}/s control`);
    const sampler = { stop: false };
    const sampling = (async () => {
      for (let next = 0; !sampler.stop; ) {
        if (now() >= next) {
          await sample();
          next += SAMPLE_EVERY_MS / 1000;
        }
        await sleep(200);
      }
    })();
    const plan = faultPlan();
    const flows = await load(0, duration);
    await plan;
    sampler.stop = true;
    await sampling;
    log(`  load over at ${now().toFixed(0)} s; waiting for the clients' sessions to be hung up`);
    await Promise.all([...warmFlows, ...flows]);

    // Drain: every accepted session terminal, or the bound.
    const accepted = posts.filter((p) => p.sessionId);
    const ends = new Map<string, SessionEnd>();
    const drainDeadline = performance.now() + DRAIN_S * 1000;
    let pending = accepted;
    log(`  drain: ${accepted.length} accepted sessions, up to ${DRAIN_S} s`);
    for (;;) {
      await pool(pending, 16, async (p) => {
        const r = await http(apis[p.tenant]!.url, 'GET', `/api/sessions/${p.sessionId}`);
        if (r.status !== 200 && r.status !== 404) return; // no answer: looked at again
        const b = r.body ?? {};
        const tr = (b.transitions ?? []) as { status: string }[];
        ends.set(p.sessionId!, {
          status: b.status,
          failureReason: b.failureReason,
          dispatchedTransitions: tr.filter((t) => t.status === 'dispatched').length,
          activeTransitions: tr.filter((t) => t.status === 'active').length,
          placements: 1 + (b.placement?.generation ?? 0),
          notFound: r.status === 404,
        });
      });
      pending = accepted.filter((p) => !TERMINAL.includes(ends.get(p.sessionId!)?.status ?? ''));
      if (!pending.length || performance.now() > drainDeadline) break;
      await sleep(2000);
    }
    const drainS = DRAIN_S - (drainDeadline - performance.now()) / 1000;
    log(`  drain over after ${drainS.toFixed(0)} s; ${pending.length} not terminal`);

    // Accounting.
    const byStatus: Record<string, number> = {};
    for (const p of accepted) {
      const e = ends.get(p.sessionId!);
      const key = !e ? 'no answer' : e.notFound ? 'not found' : `${p.tenant} ${e.status}${e.failureReason ? ` (${e.failureReason})` : ''}`;
      byStatus[key] = (byStatus[key] ?? 0) + 1;
    }
    const lost = pending;
    const doubled = accepted.filter((p) => {
      const e = ends.get(p.sessionId!);
      if (!e) return false;
      if (e.dispatchedTransitions > 1 || (dispatchCount.get(p.sessionId!) ?? 0) > 1) return true;
      // More agent jobs than placement generations: two agents for one placement.
      return p.tenant === 'voice' && (jobsOf.get(p.sessionId!)?.size ?? 0) > e.placements;
    });
    const multiJob = accepted.filter((p) => p.tenant === 'voice' && (jobsOf.get(p.sessionId!)?.size ?? 0) > 1);

    // Latency outside and inside the fault windows.
    const windows = faults.map((f) => ({ from: f.start, to: (f.back ?? duration) + SETTLE_S }));
    const inWindow = (at: number) => windows.some((w) => at >= w.from && at < w.to);
    const measured = posts.filter((p) => p.at >= 0 && p.outcome === '202');
    const firstFault = faults[0]?.start ?? duration;
    const calm = measured.filter((p) => !inWindow(p.at));
    const before = measured.filter((p) => p.at < firstFault);
    const inside = measured.filter((p) => inWindow(p.at));
    const ms = (ps: Post[]) => ps.map((p) => p.ms);

    extra.push('| Fault | At (s) | Down (s) | Recovered after (s): first 202 sent after it is back | First voice session active after it is back (s) | 503s during its window | Other failures during its window |');
    extra.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [i, f] of faults.entries()) {
      const w = windows[i]!;
      const during = posts.filter((p) => p.at >= w.from && p.at < w.to);
      const firstOk = posts.filter((p) => p.outcome === '202' && p.at >= (f.back ?? Infinity)).reduce((a, p) => Math.min(a, p.at), Infinity);
      const firstActive = [...voice.values()].filter((v) => v.active !== undefined && v.active >= (f.back ?? Infinity)).reduce((a, v) => Math.min(a, v.active!), Infinity);
      extra.push(
        `| ${f.name} | ${fmt(f.start)} | ${fmt((f.back ?? NaN) - f.start)} | ${fmt(firstOk - (f.back ?? NaN))} | ${fmt(firstActive - (f.back ?? NaN))} | ${during.filter((p) => p.outcome === '503').length} | ${during.filter((p) => p.outcome === 'other' || p.outcome === 'timeout').length} |`,
      );
    }
    extra.push('');
    extra.push(`| Window (s) | Faults in it | Requests | 202 | 503 | Other or timeout | p50 of 202s (ms) | p99 of 202s (ms) | Voice accepted | Of them active (agent joined) | Voice workers live / slots busy / free / sessions waiting (last sample) | Control API RSS (MiB) |`);
    extra.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (let w = -WARM_S; w < duration; w += windowS) {
      const end = Math.min(duration, w + windowS);
      const ps = posts.filter((p) => p.at >= w && p.at < end);
      const ok = ps.filter((p) => p.outcome === '202');
      const vs = [...voice.values()].filter((v) => v.sent >= w && v.sent < end);
      const faultsIn = faults.filter((f, i) => f.start < end && windows[i]!.to > w).map((f) => f.short);
      const rss = median(samples.filter((s) => s.at >= w && s.at < end && s.rss['api control'] !== undefined).map((s) => s.rss['api control']!));
      const sl = samples.filter((s) => s.at >= w && s.at < end && s.slots).at(-1)?.slots;
      extra.push(
        `| ${w < 0 ? `warm-up ${w}` : w}–${end} | ${faultsIn.join(', ') || '—'} | ${ps.length} | ${ok.length} | ${ps.filter((p) => p.outcome === '503').length} | ${ps.filter((p) => p.outcome === 'other' || p.outcome === 'timeout').length} | ${fmt(percentile(ms(ok), 50))} | ${fmt(percentile(ms(ok), 99))} | ${vs.length} | ${vs.filter((v) => v.active !== undefined).length} | ${sl ? `${sl.workers} / ${sl.busy} / ${sl.free} / ${sl.waiting}` : '—'} | ${Number.isNaN(rss) ? '—' : MiB(rss)} |`,
      );
    }
    extra.push('');
    extra.push('| Accepted sessions by final status (reason) | Sessions |');
    extra.push('| --- | ---: |');
    for (const [k, n] of Object.entries(byStatus).sort()) extra.push(`| ${k} | ${n} |`);

    // Memory: last minute against the first (halves of a shortened run at most).
    const span = Math.min(60, duration / 2);
    const spanText = span === 60 ? 'minute' : `${span} s`;
    const rssOf = (who: string, f: (at: number) => boolean) => median(samples.filter((s) => f(s.at) && s.rss[who] !== undefined).map((s) => s.rss[who]!)) / 2 ** 20;
    const first = (at: number) => at < span;
    const last = (at: number) => at >= duration - span;
    const keptDispatcher: Tenant = killedDispatcher === 'control' ? 'voice' : 'control';
    const memFigure = (who: string, label: string, target: boolean): Section['figures'][number] => ({
      name: `${label} RSS, last ${spanText} (median of samples)`,
      unit: 'MiB',
      runs: [rssOf(who, last)],
      baseline: { name: `${label} RSS, first ${spanText}`, unit: 'MiB', runs: [rssOf(who, first)] },
      ...(target ? { target: { on: 'ratio' as const, op: '<=' as const, limit: TARGET_RSS_RATIO } } : {}),
    });

    figures = [
      {
        name: 'accepted sessions lost (not terminal after the drain, or not found)',
        unit: 'sessions',
        runs: [lost.length],
        baseline: { name: 'accepted sessions', unit: 'sessions', runs: [accepted.length] },
        target: { on: 'value', op: '<=', limit: 0 },
      },
      {
        name: 'accepted sessions doubled (two dispatches of its agent, or more agent jobs than placement generations)',
        unit: 'sessions',
        runs: [doubled.length],
        baseline: { name: 'accepted sessions', unit: 'sessions', runs: [accepted.length] },
        target: { on: 'value', op: '<=', limit: 0 },
      },
      {
        name: 'POST /api/sessions p99 outside the fault windows',
        unit: 'ms',
        runs: [percentile(ms(calm), 99)],
        baseline: { name: 'p99 before the first fault', unit: 'ms', runs: [percentile(ms(before), 99)] },
        target: { on: 'ratio', op: '<=', limit: TARGET_LATENCY_RATIO },
      },
      {
        name: 'POST /api/sessions p50 outside the fault windows',
        unit: 'ms',
        runs: [percentile(ms(calm), 50)],
        baseline: { name: 'p50 before the first fault', unit: 'ms', runs: [percentile(ms(before), 50)] },
      },
      {
        name: 'POST /api/sessions p99 inside the fault windows (202s; not a target)',
        unit: 'ms',
        runs: [percentile(ms(inside), 99)],
        baseline: { name: 'p99 before the first fault', unit: 'ms', runs: [percentile(ms(before), 99)] },
      },
      memFigure('api control', 'control API', true),
      memFigure('api voice', 'voice API', true),
      memFigure(`dispatcher ${keptDispatcher}`, `${keptDispatcher} dispatcher (the one not killed)`, true),
      memFigure('worker 2', 'worker 2 (not killed)', false),
    ];

    const dispatchHistogram = () => {
      const h: Record<string, number> = {};
      for (const p of accepted) {
        const n = dispatchCount.get(p.sessionId!);
        const k = `${p.tenant} ${n === undefined ? 'not counted' : n}`;
        h[k] = (h[k] ?? 0) + 1;
      }
      return Object.entries(h).sort().map(([k, n]) => `${k} ×${n}`).join(', ');
    };
    const outcomes = (t: Tenant) => {
      const ps = posts.filter((p) => p.tenant === t);
      const c: Record<string, number> = {};
      for (const p of ps) {
        const k = p.outcome === 'other' ? `HTTP ${p.status}` : p.outcome;
        c[k] = (c[k] ?? 0) + 1;
      }
      return `${t} ${ps.length} (${Object.entries(c).map(([k, n]) => `${k} ×${n}`).join(', ')})`;
    };
    notes.push(
      `Why two tenants: every agent job is a forked process costing seconds of CPU, and this machine's two cores cannot start ten a second (nor one a second beside the rest of the load: in development runs most voice sessions then never had their agent within ${VOICE_ACTIVE_WAIT_MS / 1000} s, the workers logging their job processes as not scheduled; at 0.5/s, the previous full run, a voice session took a median 23 s to get its agent and the two workers' slots were full from the middle of the run on), so ${VOICE_RATE}/s are real voice sessions and the control tenant carries the other ${CONTROL_RATE}/s through the same API, queue, dispatcher, Redis, MongoDB and LiveKit paths.`,
    );
    notes.push(`Requests, warm-up included: ${outcomes('voice')}; ${outcomes('control')}. Only 202s are accepted sessions; a 503 is the API's answer while a dependency it needs is down.`);
    notes.push(
      `Lost: ${lost.length}${lost.length ? ` (${lost.slice(0, 10).map((p) => `${p.sessionId} ${ends.get(p.sessionId!)?.status ?? 'no answer'}`).join(', ')}${lost.length > 10 ? ', …' : ''})` : ''}; ` +
        `doubled: ${doubled.length}${doubled.length ? ` (${doubled.slice(0, 10).map((p) => p.sessionId).join(', ')})` : ''}. ` +
        `Agent dispatches per session in its room while held (control: ${CONTROL_HOLD_MS / 1000} s after the 202; voice: once active), by count: ${dispatchHistogram()}. ` +
        `Voice sessions with more than one agent job: ${multiJob.length}${multiJob.length ? ` (${multiJob.slice(0, 10).map((p) => `${p.sessionId} ×${jobsOf.get(p.sessionId!)!.size}, placements ${ends.get(p.sessionId!)?.placements}`).join('; ')})` : ''}. Drain took ${fmt(drainS)} s.`,
    );
    const toActive = [...voice.values()].flatMap((v) => (v.active !== undefined ? [(v.active - v.sent) * 1000] : []));
    const withoutJob = accepted.filter((p) => p.tenant === 'voice' && !jobsOf.has(p.sessionId!)).length;
    notes.push(
      `Voice sessions: ${toActive.length} of ${voice.size} accepted seen active by their client (request → active p50 ${fmt(percentile(toActive, 50))} ms, p99 ${fmt(percentile(toActive, 99))} ms, polled every ${POLL_MS} ms); ${withoutJob} never reached an agent job's entry. ` +
        `Client events: ${Object.entries(clientEvents).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}.`,
    );
    notes.push(
      `Latency samples: ${before.length} 202s before the first fault, ${calm.length} outside every fault window, ${inside.length} inside one (windows: ${windows.map((w) => `${fmt(w.from)}–${fmt(w.to)} s`).join(', ')}).`,
    );
    notes.push(
      `Workers: ${workerEvents.join(', ')}. Their warnings and errors (the workers' and their job processes' pino lines at warn or above), by message: ${Object.entries(workerWarnings).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([m, n]) => `"${m}" ×${n}`).join('; ') || 'none'}.`,
    );
    const rssLine = (who: string) => {
      const xs = samples.filter((s) => s.rss[who] !== undefined).map((s) => s.rss[who]!);
      return xs.length ? `${who} ${MiB(xs[0]!)} → ${MiB(xs.at(-1)!)} MiB (max ${MiB(Math.max(...xs))})` : `${who} no samples`;
    };
    notes.push(`RSS over the run (first → last sample; a killed process's successor goes on under the same name): ${['api voice', 'api control', 'dispatcher voice', 'dispatcher control', 'worker 1', 'worker 2'].map(rssLine).join('; ')}.`);
  } finally {
    for (const w of workers) await w?.kill(0);
    for (const d of Object.values(dispatchers)) await d?.stop();
    for (const a of Object.values(apis)) await a?.stop();
    await fakes?.stop();
    // Own servers: nothing of the run stays behind (their data folders go with them).
    await livekit?.destroy();
    await mongo?.destroy();
    await redis?.destroy();
  }
  return {
    title: '6b. Soak with faults: ten minutes at 10 sessions/s, every dependency restarted once',
    method: [
      `Servers of the run's own (a redis-server with AOF, appendfsync everysec; the embedded MongoDB-compatible server; a dev-mode livekit-server; all on free loopback ports), so the faults touch nothing else. Two tenants share them, each with its own API and dispatcher process (own QUEUE_PREFIX, database and AGENT_NAME): "voice", ${VOICE_RATE} session/s, served by ${WORKERS} real agent workers (built; the test suite's OpenAI and Deepgram fakes as providers; job slots and CPU guard as the product derives them, ${IDLE_PROCESSES} warm job processes each), whose client polls the session every ${POLL_MS} ms until it is active (its agent joined), holds it ${VOICE_HOLD_MS / 1000} s and DELETEs it; and "control", ${CONTROL_RATE} sessions/s, DISPATCH_MODE=immediate with no worker for its agent name, DELETEd ${CONTROL_HOLD_MS / 1000} s after its 202 (AGENT_JOIN_TIMEOUT=${CONTROL_JOIN_TIMEOUT_S}, ROOM_EMPTY_TIMEOUT=10).`,
      `${duration} s of open-loop load (requests sent on schedule whatever the earlier ones do; a ${WARM_S} s warm-up first, its latency discarded, its sessions counted), during which, at ${FAULT_SHARES.map((s) => `${Math.round(s * 100)} %`).join(', ')} of the run: Redis is SIGKILLed and started again from its AOF 5 s later; MongoDB is killed and started again 10 s later; LiveKit is killed and started again 10 s later (a dev-mode server: it forgets its rooms); the dispatcher of the tenant with more sessions open is SIGKILLed and a new one started 2 s later (a supervisor's restart); one worker is SIGKILLed with its job processes and started again 5 s later. A fault's window runs from its start to ${SETTLE_S} s after the service is back. DELETEs that fail during a fault are retried until they succeed or the session is over.`,
      `After the load, a drain (at most ${DRAIN_S} s) reads every accepted session until it is terminal (${TERMINAL.join(', ')}). Lost: accepted but not terminal after it, or not found. Doubled: a session with more than one dispatch of its agent in its room while it is held (LiveKit's \`listDispatch\`, counted as the tests' exactly-once checks count them), or whose transitions record more than one dispatch, or a voice session with more agent jobs (the workers' 'agent config resolved' log lines, one per job) than placement generations it went through (one worker's claim per generation). Targets: 0 lost, 0 doubled; POST p99 outside the fault windows ÷ p99 before the first fault ≤ ${TARGET_LATENCY_RATIO}; API and dispatcher RSS last minute ÷ first ≤ ${TARGET_RSS_RATIO} (the processes' own /metrics, every ${SAMPLE_EVERY_MS / 1000} s). BENCH_SOAK_FAULTS_SECONDS shortens the run (the faults move with it; the run is then partial).`,
    ],
    figures,
    notes,
    extra,
  };
}
