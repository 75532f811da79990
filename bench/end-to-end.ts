/**
 * 5. End to end: from `POST /api/sessions` (the client's send time) to the
 * agent worker's entry running for that session, at a steady 20 sessions/s,
 * through the real API, dispatcher, local LiveKit server and worker process;
 * against a bare `AgentDispatchClient.createDispatch` round trip on the same
 * LiveKit server at the same pace.
 */
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { livekitClients } from '../common/livekit.js';
import { buildRoomName, newRoomSuffix } from '../common/rooms.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, BENCH_API_KEY, call, dropEnv, isolatedEnv } from './lib/env.js';
import { bucketOfQuantile, promBuckets, promValue, scrape } from './lib/prom.js';
import { fmt, type Section } from './lib/report.js';
import { median, percentile, pool } from './lib/stats.js';
import { spawnWorker, type WorkerProcess } from './lib/worker.js';

/** Sessions per measured run; BENCH_E2E_SESSIONS (development only) makes the whole run partial. */
export const E2E_SESSIONS = Number(process.env.BENCH_E2E_SESSIONS ?? 100);
const WARM_SESSIONS = Math.min(20, E2E_SESSIONS);
/** One request every 50 ms: 20 sessions/s, whatever the responses do (open loop). */
const INTERVAL_MS = 50;
/**
 * How long after a run's last request its sessions may take to reach the worker's entry; one that has not
 * by then counts as infinitely slow. 30 s is 30 times the p99 target: what is later only says how much later.
 */
const ENTRY_TIMEOUT_MS = 30_000;
const WORKER_MAX_JOBS = 500;
const IDLE_PROCESSES = Number(process.env.BENCH_E2E_IDLE_PROCESSES ?? 2);
const TARGET_P50_MS = 250;
const TARGET_P99_MS = 1000;

type Log = (m: string) => void;

interface Sent {
  /** Wall clock (ms) just before the request was handed to fetch. */
  sentWall: number;
  postMs?: number;
  status?: number;
  sessionId?: string;
  error?: string;
}

interface Entry {
  /** The job process's pino `time` of its 'agent config resolved' line (wall clock, ms). */
  at: number;
  jobId?: string;
  tier?: string;
}

interface RecordTimes {
  requestedAt: number;
  dispatched?: number;
  active?: number;
  status: string;
  failureReason?: string;
}

/** Calls `fn(i)` at t0 + i × interval (open loop: it never waits for an earlier call). */
async function paced<T>(n: number, intervalMs: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const t0 = performance.now() + 20;
  const out: Promise<T>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = t0 + i * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    out.push(fn(i));
  }
  return Promise.all(out);
}

interface GroupUsage {
  processes: number;
  /** Agent job processes (@livekit/agents job_proc_lazy_main), warm or running a job. */
  jobProcesses: number;
  rssBytes: number;
}

/** Processes of a process group, with their total resident memory (Linux /proc; zeros elsewhere). */
async function groupUsage(pgid: number): Promise<GroupUsage> {
  let processes = 0;
  let jobProcesses = 0;
  let rssBytes = 0;
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  } catch {
    return { processes, jobProcesses, rssBytes };
  }
  await Promise.all(
    pids.map(async (pid) => {
      try {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // After "pid (comm) ": state ppid pgrp … rss is the 22nd field (index 21), in pages.
        if (Number(f[2]) !== pgid) return;
        processes++;
        rssBytes += Number(f[21]) * 4096;
        if ((await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('job_proc_lazy_main')) jobProcesses++;
      } catch {
        /* gone meanwhile */
      }
    }),
  );
  return { processes, jobProcesses, rssBytes };
}

const ms = (x: number) => `${fmt(x)} ms`;
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** Adds the difference of two histogram bucket snapshots to `into`. */
function addBuckets(into: Map<number, number>, before: Map<number, number>, after: Map<number, number>): void {
  for (const [le, v] of after) into.set(le, (into.get(le) ?? 0) + v - (before.get(le) ?? 0));
}

export async function benchEndToEnd(runs: number, log: Log): Promise<Section> {
  // A join check firing while a slow run is still starting its agents would re-dispatch them and measure
  // the re-dispatch instead; pushed past the end of the benchmark. Rooms stay open until the run's
  // DELETEs close them: LiveKit answers deleteDispatch for a room its empty timeout already closed
  // with a 503 after 3 s, which the API passes on (see the notes).
  const env = isolatedEnv('e2e', { AGENT_JOIN_TIMEOUT: '3600', ROOM_EMPTY_TIMEOUT: '600' });
  const { rooms, dispatch } = livekitClients(env as never);
  let api: ChildServer | undefined;
  let dispatcher: ChildServer | undefined;
  let fakes: ChildServer | undefined;
  let worker: WorkerProcess | undefined;
  const entries = new Map<string, Entry>();
  /** When the worker logged each job request from LiveKit (wall clock, ms), by job id. */
  const jobRequests = new Map<string, number>();
  const jobFailures: Record<string, number> = {};
  const out = { p50: [] as number[], p99: [] as number[], bP50: [] as number[], bP99: [] as number[], rate: [] as number[], asked: [] as number[] };
  const all = {
    intake: [] as number[],
    post: [] as number[],
    toDispatched: [] as number[],
    dispatchedToEntry: [] as number[],
    dispatchedToJobRequest: [] as number[],
    jobRequestToEntry: [] as number[],
    entryToActive: [] as number[],
    sendToEntry: [] as number[],
    sendToActive: [] as number[],
    entryGaps: [] as number[],
    reached: 0,
    active: 0,
    rejected: 0,
    sent: 0,
  };
  const hist = { job_received: new Map<number, number>(), session_started: new Map<number, number>() };
  const tiers: Record<string, { n: number; sum: number }> = {};
  const notes: string[] = [];
  const runLines: string[] = [];
  let peak: GroupUsage = { processes: 0, jobProcesses: 0, rssBytes: 0 };
  let idle: GroupUsage | undefined;
  const baselineRooms: string[] = [];
  const openSessions = new Set<string>();

  /** Answers other than 200/409 to the DELETEs, by status and detail; each was retried. */
  const deleteRetries: Record<string, number> = {};
  const endSessions = async (ids: string[]) => {
    await pool(ids, 8, async (id) => {
      for (let attempt = 1; ; attempt++) {
        const r = await call(api!.url, 'DELETE', `/api/sessions/${id}`);
        if (r.status === 200 || r.status === 409) break;
        const what = `${r.status} ${r.body?.detail ?? ''}`.trim();
        deleteRetries[what] = (deleteRetries[what] ?? 0) + 1;
        // 503 asks for a retry; anything else is a failure of the benchmark. A 503 that persists is left
        // (noted): the session's room closes by its empty timeout, its job process with it.
        if (r.status !== 503) throw new Error(`DELETE /api/sessions/${id}: ${r.status} ${JSON.stringify(r.body)}`);
        if (attempt >= 3) {
          deleteRetries['gave up after 3 attempts'] = (deleteRetries['gave up after 3 attempts'] ?? 0) + 1;
          break;
        }
        await sleep(500 * attempt);
      }
      openSessions.delete(id);
    });
  };

  try {
    fakes = await startChild('fakes.ts', {});
    const providers = JSON.parse(fakes.url) as { openai: string; deepgram: string };
    api = await startChild('api.ts', env);
    await call(api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
    dispatcher = await startChild('dispatcher.ts', env);
    const workerEnv = {
      ...env,
      LOG_LEVEL: 'info',
      WORKER_HOST: '127.0.0.1',
      WORKER_HEALTH_PORT: '0',
      WORKER_METRICS_PORT: '0',
      WORKER_MAX_JOBS: String(WORKER_MAX_JOBS),
      WORKER_LOAD_THRESHOLD: '1',
      WORKER_IDLE_PROCESSES: String(IDLE_PROCESSES),
      OPENAI_BASE_URL: providers.openai,
      OPENAI_API_KEY: 'sk-bench',
      DEEPGRAM_BASE_URL: providers.deepgram,
      DEEPGRAM_API_KEY: 'dg-bench',
    };
    // The agents framework's own lines are pretty-printed: "[HH:MM:SS.mmm] INFO (pid): received job request"
    // (local time of day), its fields on the lines after it.
    let jobRequestAt: number | undefined;
    const onLine = (line: string) => {
      if (!line.startsWith('{')) {
        const req = /^\[(\d{2}):(\d{2}):(\d{2})\.(\d{3})\].*received job request/.exec(line);
        if (req) {
          const d = new Date();
          d.setHours(Number(req[1]), Number(req[2]), Number(req[3]), Number(req[4]));
          // Just after midnight, the line may be from yesterday.
          if (d.getTime() - Date.now() > 12 * 3600_000) d.setDate(d.getDate() - 1);
          jobRequestAt = d.getTime();
          return;
        }
        const id = /^\s+jobId: "([^"]+)"/.exec(line);
        if (id && jobRequestAt !== undefined) {
          if (!jobRequests.has(id[1]!)) jobRequests.set(id[1]!, jobRequestAt);
          jobRequestAt = undefined;
        }
        return;
      }
      if (line.includes('"agent config resolved"')) {
        try {
          const j = JSON.parse(line) as { time: number; sessionId?: string; jobId?: string; tier?: string };
          if (j.sessionId && !entries.has(j.sessionId)) entries.set(j.sessionId, { at: j.time, jobId: j.jobId, tier: j.tier });
        } catch {
          /* not one of ours */
        }
      } else if (line.includes('"job ended without a session"')) {
        try {
          const j = JSON.parse(line) as { reason?: string };
          jobFailures[j.reason ?? '?'] = (jobFailures[j.reason ?? '?'] ?? 0) + 1;
        } catch {
          /* not one of ours */
        }
      }
    };

    for (let run = -1; run < runs; run++) {
      const n = run < 0 ? WARM_SESSIONS : E2E_SESSIONS;

      // Baseline: bare createDispatch round trips at the same pace, into rooms made beforehand (untimed),
      // for an agent name no worker serves (so nothing is started by them).
      const names = Array.from({ length: n }, () => buildRoomName('bench', newRoomSuffix()));
      await pool(names, 8, async (name) => {
        await rooms.createRoom({ name, emptyTimeout: 60, maxParticipants: 0 });
        baselineRooms.push(name);
      });
      const base = await paced(n, INTERVAL_MS, async (i) => {
        const t = performance.now();
        await dispatch.createDispatch(names[i]!, `${env.AGENT_NAME}-nobody`, { metadata: '{}' });
        return performance.now() - t;
      });
      await pool(baselineRooms.splice(0), 8, (name) => rooms.deleteRoom(name).catch(() => undefined));

      // A fresh worker per run, its warm job processes up: a run's leftover job launches cannot slow the next.
      worker = await spawnWorker(workerEnv, onLine);
      const workerMetrics = `http://127.0.0.1:${worker.metricsPort}/metrics`;
      for (let i = 0; i < 120 && (await groupUsage(worker.pid)).jobProcesses < IDLE_PROCESSES; i++) await sleep(500);
      await sleep(1000);
      idle ??= await groupUsage(worker.pid);

      const sampler = { stop: false, peak: { processes: 0, jobProcesses: 0, rssBytes: 0 } as GroupUsage };
      const sampling = (async () => {
        while (!sampler.stop) {
          const u = await groupUsage(worker!.pid);
          if (u.rssBytes > sampler.peak.rssBytes) sampler.peak = u;
          await sleep(2000);
        }
      })();

      // The product: POST /api/sessions every 50 ms.
      let lastSentWall = 0;
      const sent = await paced(n, INTERVAL_MS, async (): Promise<Sent> => {
        const s: Sent = { sentWall: Date.now() };
        lastSentWall = s.sentWall;
        const t = performance.now();
        try {
          const res = await fetch(`${api!.url}/api/sessions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${BENCH_API_KEY}`, 'content-type': 'application/json' },
            body: '{"agentId":"bench"}',
          });
          const body = (await res.json()) as { sessionId?: string };
          s.postMs = performance.now() - t;
          s.status = res.status;
          if (res.status === 202 && body.sessionId) {
            s.sessionId = body.sessionId;
            openSessions.add(body.sessionId);
          }
        } catch (err) {
          s.error = (err as Error).message;
        }
        return s;
      });
      const accepted = sent.filter((s) => s.sessionId);
      const deadline = lastSentWall + ENTRY_TIMEOUT_MS;
      while (Date.now() < deadline && accepted.some((s) => !entries.has(s.sessionId!))) await sleep(100);
      // Entries after the deadline are not counted, even if they arrive while the records are read.
      const reached = new Map(accepted.flatMap((s) => (entries.get(s.sessionId!)?.at ?? Infinity) <= deadline ? [[s.sessionId!, entries.get(s.sessionId!)!] as const] : []));

      // The session records, for the stage breakdown (untimed): a session that reached the entry gets up
      // to 15 s more to be recorded active.
      const records = new Map<string, RecordTimes>();
      const recordDeadline = Date.now() + 15_000;
      let pending = accepted.map((s) => s.sessionId!);
      while (pending.length) {
        await pool(pending, 8, async (id) => {
          const v = (await call(api!.url, 'GET', `/api/sessions/${id}`, undefined, 200)).body as {
            requestedAt: string;
            status: string;
            failureReason?: string;
            transitions: { status: string; at: string }[];
          };
          const at = (st: string) => {
            const t = v.transitions.find((x) => x.status === st);
            return t ? Date.parse(t.at) : undefined;
          };
          records.set(id, { requestedAt: Date.parse(v.requestedAt), dispatched: at('dispatched'), active: at('active'), status: v.status, failureReason: v.failureReason });
        });
        pending = pending.filter((id) => reached.has(id) && records.get(id)!.active === undefined && ['dispatched', 'dispatching', 'queued'].includes(records.get(id)!.status));
        if (!pending.length || Date.now() > recordDeadline) break;
        await sleep(1000);
      }
      const metrics = await scrape(workerMetrics);
      sampler.stop = true;
      await sampling;

      // End every session of the run (dispatch deleted, room closed), then the worker and its job processes.
      await endSessions(accepted.map((s) => s.sessionId!));
      await worker.kill(5000);
      worker = undefined;

      // Every request counts: one that was refused or did not reach the worker in time is slower than any that did.
      const toEntry = sent.map((s) => {
        const e = s.sessionId ? reached.get(s.sessionId) : undefined;
        return e ? e.at - s.sentWall : Infinity;
      });
      const p50 = percentile(toEntry, 50);
      const p99 = percentile(toEntry, 99);
      const bP50 = percentile(base, 50);
      const bP99 = percentile(base, 99);
      const entryTimes = [...reached.values()].map((e) => e.at).sort((a, b) => a - b);
      const gaps = entryTimes.slice(1).map((t, i) => t - entryTimes[i]!);
      const activeCount = accepted.filter((s) => records.get(s.sessionId!)?.active !== undefined).length;
      const line =
        `entry p50 ${ms(p50)} p99 ${ms(p99)}; ${reached.size}/${n} reached the worker's entry within ${ENTRY_TIMEOUT_MS / 1000} s of the last request ` +
        `(median gap between successive entries ${ms(median(gaps))}), ${activeCount} recorded active; POST p50 ${ms(percentile(accepted.map((s) => s.postMs!), 50))}; ` +
        `worker group peak ${sampler.peak.processes} processes (${sampler.peak.jobProcesses} job processes), ${gib(sampler.peak.rssBytes)} RSS; createDispatch p50 ${ms(bP50)} p99 ${ms(bP99)}`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      runLines.push(`Run ${run + 1}: ${line}.`);
      out.p50.push(p50);
      out.p99.push(p99);
      out.bP50.push(bP50);
      out.bP99.push(bP99);
      out.rate.push(1000 / median(gaps));
      out.asked.push(1000 / INTERVAL_MS);
      if (sampler.peak.rssBytes > peak.rssBytes) peak = sampler.peak;
      all.sent += sent.length;
      all.rejected += sent.length - accepted.length;
      all.reached += reached.size;
      all.active += activeCount;
      all.entryGaps.push(...gaps);
      for (const s of accepted) {
        const e = reached.get(s.sessionId!);
        const r = records.get(s.sessionId!);
        all.post.push(s.postMs!);
        if (e) all.sendToEntry.push(e.at - s.sentWall);
        if (!r) continue;
        all.intake.push(r.requestedAt - s.sentWall);
        if (r.dispatched !== undefined) all.toDispatched.push(r.dispatched - r.requestedAt);
        if (r.dispatched !== undefined && e) all.dispatchedToEntry.push(e.at - r.dispatched);
        const jr = e?.jobId ? jobRequests.get(e.jobId) : undefined;
        if (jr !== undefined && r.dispatched !== undefined) all.dispatchedToJobRequest.push(jr - r.dispatched);
        if (jr !== undefined && e) all.jobRequestToEntry.push(e.at - jr);
        if (e && r.active !== undefined) all.entryToActive.push(r.active - e.at);
        if (e && r.active !== undefined) all.sendToActive.push(r.active - s.sentWall);
      }
      // A fresh worker's histograms hold this run's observations only.
      for (const stage of ['job_received', 'session_started'] as const) {
        addBuckets(hist[stage], new Map(), promBuckets(metrics, 'agent_runtime_session_stage_seconds', { stage }));
      }
      for (const tier of ['lru', 'redis', 'mongo']) {
        const t = (tiers[tier] ??= { n: 0, sum: 0 });
        t.n += promValue(metrics, 'agent_runtime_config_resolution_seconds_count', { tier });
        t.sum += promValue(metrics, 'agent_runtime_config_resolution_seconds_sum', { tier });
      }
    }

    notes.push(
      `${all.reached} of ${all.sent} measured requests reached the worker's entry within ${ENTRY_TIMEOUT_MS / 1000} s of their run's last request` +
        `${all.rejected ? ` (${all.rejected} were not accepted by the API)` : ' (all were accepted, 202)'}; the others count as infinitely slow in the percentiles, so a percentile above that share reads ∞. ` +
        `${all.active} were recorded \`active\` (agent session started) by the time the records were read.`,
    );
    notes.push(
      `What limits it: the worker starts job processes one after another. The median gap between successive entries, over every measured run, was ${ms(median(all.entryGaps))} ` +
        `(about ${fmt(1000 / median(all.entryGaps))} job starts per second against 20 requested per second): once the ${IDLE_PROCESSES} warm processes are taken, each job waits for a new process to be forked, load worker/agent.ts and prewarm (@livekit/agents' ProcPool initialises one process at a time).`,
    );
    const retried = Object.entries(deleteRetries);
    if (retried.length) notes.push(`Ending the sessions (untimed), \`DELETE /api/sessions/:id\` answered, and was retried after: ${retried.map(([k, v]) => `${k} ×${v}`).join('; ')}.`);
    const fails = Object.entries(jobFailures);
    if (fails.length) notes.push(`Jobs that ended without a session (worker log 'job ended without a session'), all runs including the warm-up: ${fails.map(([k, v]) => `${k} ×${v}`).join(', ')}.`);
    notes.push(
      `Stage medians over the measured sessions that reached the entry in time (ms; the client's clock, the API's \`requestedAt\`, the record's \`transitions[].at\` and the job process's log time are one machine's wall clock, 1 ms resolution): ` +
        `client send → API \`requestedAt\` ${fmt(median(all.intake))}; POST round trip (202 received) ${fmt(median(all.post))}; ` +
        `\`requestedAt\` → \`dispatched\` written ${fmt(median(all.toDispatched))}; \`dispatched\` written → worker entry ${fmt(median(all.dispatchedToEntry))}, of which \`dispatched\` written → the worker's 'received job request' line (LiveKit's delivery; can be negative, LiveKit may offer the job before the dispatcher's write lands) ${fmt(median(all.dispatchedToJobRequest))} and 'received job request' → entry (waiting for a job process) ${fmt(median(all.jobRequestToEntry))}; ` +
        `worker entry → \`active\` written ${fmt(median(all.entryToActive))}; client send → worker entry ${fmt(median(all.sendToEntry))}; client send → \`active\` ${fmt(median(all.sendToActive))}. ` +
        `(\`requestedAt\` → \`dispatched\` counts every session the API accepted.)`,
    );
    const r = (x: { lower: number; upper: number }) => `(${fmt(x.lower * 1000)}, ${fmt(x.upper * 1000)}] ms`;
    const h = (stage: 'job_received' | 'session_started') => {
      const q50 = bucketOfQuantile(new Map(), hist[stage], 0.5);
      const q99 = bucketOfQuantile(new Map(), hist[stage], 0.99);
      return `${stage}: ${q50.n} observations, p50 in ${r(q50)}, p99 in ${r(q99)}`;
    };
    notes.push(`Cross-check, the workers' own \`agent_runtime_session_stage_seconds\` histogram (from \`requestedAt\`; coarse buckets; only jobs that got there, including late ones) over the measured runs: ${h('job_received')}; ${h('session_started')}.`);
    const tierText = Object.entries(tiers).filter(([, t]) => t.n).map(([k, t]) => `${k} ×${t.n} (mean ${fmt((t.sum / t.n) * 1000)} ms)`);
    notes.push(`The figure stops at the 'agent config resolved' line, which follows the entry's start by the config resolution (\`agent_runtime_config_resolution_seconds\`): ${tierText.join(', ') || 'none observed'}.`);
    if (idle) {
      notes.push(
        `Memory: the worker's process group (worker, job processes, their helpers) held ${idle.processes} processes (${idle.jobProcesses} warm job processes), ${gib(idle.rssBytes)} RSS when idle, and at most ${peak.processes} processes (${peak.jobProcesses} job processes), ${gib(peak.rssBytes)} RSS during a measured run (sampled every 2 s) — roughly ${fmt(peak.jobProcesses ? (peak.rssBytes - idle.rssBytes) / Math.max(1, peak.jobProcesses - idle.jobProcesses) / 2 ** 20 : 0)} MiB per extra job process.`,
      );
    }
    notes.push(...runLines);
  } finally {
    if (api && openSessions.size) await endSessions([...openSessions]).catch(() => undefined);
    await pool(baselineRooms.splice(0), 8, (name) => rooms.deleteRoom(name).catch(() => undefined));
    await worker?.kill(0);
    await dispatcher?.stop();
    await api?.stop();
    await fakes?.stop();
    await dropEnv(env);
  }
  return {
    title: '5. End to end: session request to agent entry',
    method: [
      `The whole path on this machine: the real API (\`startApi\`, its own process), the real dispatcher (\`startDispatcher\`, its own process, default DISPATCH_CONCURRENCY), the local livekit-server, and the real agent worker (\`node --import tsx worker/main.ts dev\`, its own process group, WORKER_MAX_JOBS=${WORKER_MAX_JOBS}, WORKER_LOAD_THRESHOLD=1, WORKER_IDLE_PROCESSES=${IDLE_PROCESSES}, the product default) with the test suite's OpenAI and Deepgram fakes (their own process) as providers, so every job starts a real agent session in a job process of its own and speaks its greeting. AGENT_JOIN_TIMEOUT=3600 keeps the dispatcher's join check (re-dispatch) out of the measurement; ROOM_EMPTY_TIMEOUT=600 keeps the rooms of sessions still waiting for the worker open until the run ends them.`,
      `Per run, ${E2E_SESSIONS} \`POST /api/sessions\` \`{"agentId":"bench"}\` at a steady 20 per second, open loop (one every ${INTERVAL_MS} ms whatever the earlier ones are doing). The figure is, per request, from the client's send time (wall clock just before the request) to the worker's job process logging 'agent config resolved' for that session (its pino \`time\`; worker/entry.ts logs it right after the entry's config lookup), p50 and p99 over the run's ${E2E_SESSIONS} requests; a request that did not get there within ${ENTRY_TIMEOUT_MS / 1000} s of the run's last request counts as infinitely slow. Each run gets a fresh worker (started, its warm processes up, before the first request; killed after the run), so a run's backlog of job launches cannot slow the next; after each run every session is ended (\`DELETE /api/sessions/:id\`: dispatch deleted, room closed). A warm-up run of ${WARM_SESSIONS} sessions is discarded.`,
      `Baseline, interleaved run by run (just before each run): ${E2E_SESSIONS} bare \`AgentDispatchClient.createDispatch\` round trips at the same pace on the same LiveKit server, into rooms created beforehand (untimed), for an agent name no worker serves. It is the one LiveKit call the product's path cannot avoid, not a like-for-like path (a raw dispatch to the same worker would need product changes): the target is absolute (p50 ≤ ${TARGET_P50_MS} ms, p99 ≤ ${TARGET_P99_MS} ms) and the ratio only says how many createDispatch round trips the path costs.`,
    ],
    figures: [
      { name: 'request → worker entry p50', unit: 'ms', runs: out.p50, baseline: { name: 'createDispatch round trip p50', unit: 'ms', runs: out.bP50 }, target: { on: 'value', op: '<=', limit: TARGET_P50_MS } },
      { name: 'request → worker entry p99', unit: 'ms', runs: out.p99, baseline: { name: 'createDispatch round trip p99', unit: 'ms', runs: out.bP99 }, target: { on: 'value', op: '<=', limit: TARGET_P99_MS } },
      {
        name: 'sessions reaching the worker entry per second (1 / median gap between successive entries)',
        unit: 'sessions/s',
        runs: out.rate,
        baseline: { name: 'sessions requested per second', unit: 'sessions/s', runs: out.asked },
      },
    ],
    notes,
  };
}
