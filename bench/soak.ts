/**
 * 6. Soak: five minutes of a steady 10 sessions/s through POST /api/sessions
 * with the real API and dispatcher, showing that the API's memory and its
 * request latency do not grow. One long run, compared with itself: its last
 * minute against its first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { livekitClients } from '../common/livekit.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, call, dropEnv, isolatedEnv, requestSession } from './lib/env.js';
import { promValue, scrape } from './lib/prom.js';
import { fmt, type Section } from './lib/report.js';
import { median, percentile, pool } from './lib/stats.js';

/** BENCH_SOAK_SECONDS shortens the run (development only; the run is then partial). */
export const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 300);
export const SOAK_DEFAULT_SECONDS = 300;
const RATE = 10;
const WARM_S = 15;
const WINDOW_S = 30;
const SAMPLE_EVERY_MS = 5000;
const REQUEST_TIMEOUT_MS = 30_000;
const TARGET_LATENCY_RATIO = 1.2;
const TARGET_RSS_RATIO = 1.5;

type Log = (m: string) => void;

interface Req {
  /** Seconds since the start of the measured run at which it was sent. */
  at: number;
  ms: number;
  ok: boolean;
  kind?: string;
}

interface Sample {
  at: number;
  apiRss: number;
  apiHeap: number;
  dispRss: number;
  dispHeap: number;
  dispatched: number;
  waiting: number;
}

const MiB = (b: number) => `${fmt(b / 2 ** 20)}`;

export async function benchSoak(_runs: number, log: Log): Promise<Section> {
  if (!Number.isFinite(SOAK_SECONDS) || SOAK_SECONDS < 20) throw new Error('BENCH_SOAK_SECONDS must be at least 20');
  // No worker joins these rooms: dispatches go out at once (no worker reports slots here), the join check is
  // pushed past the end of the run; the rooms the dispatcher makes close by themselves 30 s after (nobody
  // ever joins them), so LiveKit does not pile up 3,000 of them.
  const env = isolatedEnv('soak', { DISPATCH_MODE: 'immediate', AGENT_JOIN_TIMEOUT: '3600', ROOM_EMPTY_TIMEOUT: '30' });
  let api: ChildServer | undefined;
  let dispatcher: ChildServer | undefined;
  const roomNames: string[] = [];
  const reqs: Req[] = [];
  const samples: Sample[] = [];
  const notes: string[] = [];
  const extra: string[] = [];
  const duration = SOAK_SECONDS;
  let figures: Section['figures'] = [];
  try {
    api = await startChild('api.ts', env);
    dispatcher = await startChild('dispatcher.ts', env);
    await call(api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);

    const post = async (): Promise<Omit<Req, 'at'>> => {
      const t = performance.now();
      try {
        const res = await requestSession(api!.url, REQUEST_TIMEOUT_MS);
        const body = res.body;
        const ms = performance.now() - t;
        if (body.roomName) roomNames.push(body.roomName);
        return { ms, ok: res.status === 202, ...(res.status === 202 ? {} : { kind: `HTTP ${res.status}` }) };
      } catch (err) {
        return { ms: performance.now() - t, ok: false, kind: (err as Error).name === 'TimeoutError' ? 'timeout' : 'connection error' };
      }
    };

    /** `seconds` of one request every 1/RATE s, open loop; `into` gets each one as it is answered. */
    const load = async (seconds: number, into?: Req[], onSecond?: (s: number) => void) => {
      const n = seconds * RATE;
      const interval = 1000 / RATE;
      const t0 = performance.now() + 20;
      const pending: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const wait = t0 + i * interval - performance.now();
        if (wait > 0) await sleep(wait);
        const at = (i * interval) / 1000; // its scheduled time: windows are by schedule
        pending.push(post().then((r) => void into?.push({ at, ...r })));
        if (i % RATE === 0) onSecond?.(i / RATE);
      }
      await Promise.all(pending);
    };

    const sample = async (at: number) => {
      const [a, d] = await Promise.all([scrape(`${api!.url}/metrics`), scrape(dispatcher!.url)]);
      samples.push({
        at,
        apiRss: promValue(a, 'process_resident_memory_bytes'),
        apiHeap: promValue(a, 'nodejs_heap_size_used_bytes'),
        dispRss: promValue(d, 'process_resident_memory_bytes'),
        dispHeap: promValue(d, 'nodejs_heap_size_used_bytes'),
        dispatched: promValue(d, 'agent_runtime_dispatch_outcomes_total', { result: 'dispatched' }),
        waiting: promValue(d, 'agent_runtime_queue_jobs', { queue: 'sessions', state: 'waiting' }),
      });
    };

    log(`  warm-up: ${WARM_S} s at ${RATE}/s (discarded)`);
    await load(WARM_S);

    log(`  soak: ${duration} s at ${RATE}/s`);
    const started = performance.now();
    const sampler = { stop: false };
    const sampling = (async () => {
      let next = 0;
      while (!sampler.stop) {
        const at = (performance.now() - started) / 1000;
        if (at >= next) {
          await sample(at).catch((err) => log(`  sample at ${at.toFixed(0)} s failed: ${(err as Error).message}`));
          next += SAMPLE_EVERY_MS / 1000;
        }
        await sleep(100);
      }
    })();
    let lastReport = 0;
    await load(duration, reqs, (s) => {
      if (s - lastReport >= 60) {
        lastReport = s;
        const recent = reqs.filter((r) => r.at >= s - 60);
        const last = samples[samples.length - 1];
        log(`    ${s} s: last minute p50 ${fmt(percentile(recent.map((r) => r.ms), 50))} ms; API RSS ${last ? MiB(last.apiRss) : '?'} MiB, heap ${last ? MiB(last.apiHeap) : '?'} MiB`);
      }
    });
    sampler.stop = true;
    await sampling;
    await sample(duration);

    // Per 30-second window.
    extra.push('| Window (s) | Requests | Not 202 | p50 (ms) | p99 (ms) | API RSS (MiB) | API heap used (MiB) | Dispatcher RSS (MiB) | Dispatched | Queue waiting at end |');
    extra.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    let prevDispatched = samples[0]?.dispatched ?? 0;
    for (let w = 0; w < duration; w += WINDOW_S) {
      const end = Math.min(duration, w + WINDOW_S);
      const rs = reqs.filter((r) => r.at >= w && r.at < end);
      const ss = samples.filter((s) => s.at >= w && s.at < end + (end === duration ? 1 : 0));
      const lastS = ss[ss.length - 1];
      const dispatched = lastS ? lastS.dispatched - prevDispatched : 0;
      if (lastS) prevDispatched = lastS.dispatched;
      extra.push(
        `| ${w}–${end} | ${rs.length} | ${rs.filter((r) => !r.ok).length} | ${fmt(percentile(rs.map((r) => r.ms), 50))} | ${fmt(percentile(rs.map((r) => r.ms), 99))} | ${MiB(median(ss.map((s) => s.apiRss)))} | ${MiB(median(ss.map((s) => s.apiHeap)))} | ${MiB(median(ss.map((s) => s.dispRss)))} | ${dispatched} | ${lastS?.waiting ?? '?'} |`,
      );
    }

    // First minute against last minute (for a shortened run, its first and last halves at most).
    const span = Math.min(60, duration / 2);
    const first = (at: number) => at < span;
    const last = (at: number) => at >= duration - span;
    const lat = (f: (at: number) => boolean) => reqs.filter((r) => f(r.at)).map((r) => r.ms);
    const mem = (f: (at: number) => boolean, k: keyof Sample) => median(samples.filter((s) => f(s.at)).map((s) => s[k]));
    const spanText = span === 60 ? 'minute' : `${span} s`;
    figures = [
      {
        name: `request latency p50, last ${spanText}`,
        unit: 'ms',
        runs: [percentile(lat(last), 50)],
        baseline: { name: `request latency p50, first ${spanText}`, unit: 'ms', runs: [percentile(lat(first), 50)] },
        target: { on: 'ratio', op: '<=', limit: TARGET_LATENCY_RATIO },
      },
      {
        name: `request latency p99, last ${spanText}`,
        unit: 'ms',
        runs: [percentile(lat(last), 99)],
        baseline: { name: `request latency p99, first ${spanText}`, unit: 'ms', runs: [percentile(lat(first), 99)] },
      },
      {
        name: `API RSS, last ${spanText} (median of samples)`,
        unit: 'MiB',
        runs: [mem(last, 'apiRss') / 2 ** 20],
        baseline: { name: `API RSS, first ${spanText}`, unit: 'MiB', runs: [mem(first, 'apiRss') / 2 ** 20] },
        target: { on: 'ratio', op: '<=', limit: TARGET_RSS_RATIO },
      },
      {
        name: `API heap used, last ${spanText} (median of samples)`,
        unit: 'MiB',
        runs: [mem(last, 'apiHeap') / 2 ** 20],
        baseline: { name: `API heap used, first ${spanText}`, unit: 'MiB', runs: [mem(first, 'apiHeap') / 2 ** 20] },
      },
      {
        name: `dispatcher RSS, last ${spanText} (median of samples)`,
        unit: 'MiB',
        runs: [mem(last, 'dispRss') / 2 ** 20],
        baseline: { name: `dispatcher RSS, first ${spanText}`, unit: 'MiB', runs: [mem(first, 'dispRss') / 2 ** 20] },
      },
    ];

    let open = 0;
    const { rooms } = livekitClients(env as never);
    for (let i = 0; i < roomNames.length; i += 500) open += (await rooms.listRooms(roomNames.slice(i, i + 500))).length;
    notes.push(`${open} of the ${roomNames.length} rooms made during the warm-up and the run were still open in LiveKit at its end (ROOM_EMPTY_TIMEOUT=30); they are deleted afterwards.`);

    const bad: Record<string, number> = {};
    for (const r of reqs) if (!r.ok) bad[r.kind!] = (bad[r.kind!] ?? 0) + 1;
    const kinds = Object.entries(bad);
    notes.push(
      `${reqs.length} requests in ${duration} s (${fmt(reqs.length / duration)}/s)` +
        (kinds.length ? `; not 202: ${kinds.map(([k, n]) => `${k} ×${n}`).join(', ')}.` : ', every one answered 202.'),
    );
    const s0 = samples[0];
    const sN = samples[samples.length - 1];
    if (s0 && sN) {
      notes.push(
        `API process over the run: RSS ${MiB(s0.apiRss)} → ${MiB(sN.apiRss)} MiB (max ${MiB(Math.max(...samples.map((s) => s.apiRss)))}), heap used ${MiB(s0.apiHeap)} → ${MiB(sN.apiHeap)} MiB (max ${MiB(Math.max(...samples.map((s) => s.apiHeap)))}); ` +
          `dispatcher RSS ${MiB(s0.dispRss)} → ${MiB(sN.dispRss)} MiB, heap used ${MiB(s0.dispHeap)} → ${MiB(sN.dispHeap)} MiB. ` +
          `The dispatcher dispatched ${sN.dispatched - s0.dispatched} sessions during the run; its sessions queue held ${sN.waiting} waiting jobs at the end.`,
      );
    }
  } finally {
    await dispatcher?.stop();
    await api?.stop();
    // Rooms the dispatcher made and LiveKit has not closed yet.
    const { rooms } = livekitClients(env as never);
    for (let i = 0; i < roomNames.length; i += 500) {
      const open = await rooms.listRooms(roomNames.slice(i, i + 500)).catch(() => []);
      await pool(open.map((r) => r.name), 8, (name) => rooms.deleteRoom(name).catch(() => undefined));
    }
    await dropEnv(env);
  }
  return {
    title: '6. Soak: five minutes at 10 sessions/s',
    method: [
      `The real API (\`startApi\`, its own process) and the real dispatcher (\`startDispatcher\`, its own process) on their own prefix and database, with the local livekit-server: every session is queued, dispatched (room created, agent dispatch made) and recorded. No agent worker runs (AGENT_JOIN_TIMEOUT=3600 so the join check never fires; ROOM_EMPTY_TIMEOUT=30 so LiveKit closes the rooms nobody joins).`,
      `One long run, not ${5} repetitions: ${duration} s of \`POST /api/sessions\` \`{"agentId":"bench"}\` at a steady ${RATE} per second, open loop (one every ${1000 / RATE} ms whatever the earlier ones are doing), after a ${WARM_S} s warm-up at the same rate that is discarded. Latency is each request's round trip at the client. Every ${SAMPLE_EVERY_MS / 1000} s the API's and the dispatcher's own \`/metrics\` are read for \`process_resident_memory_bytes\` and \`nodejs_heap_size_used_bytes\`.`,
      `The figures compare the run's last minute with its first: the baseline column is the first minute of the same run, the ratio last ÷ first. This project's targets: latency p50 last ÷ first ≤ ${TARGET_LATENCY_RATIO}, API RSS last ÷ first ≤ ${TARGET_RSS_RATIO}. BENCH_SOAK=0 skips this benchmark and BENCH_SOAK_SECONDS shortens it (either makes the run partial: this file is not rewritten).`,
    ],
    figures,
    notes,
    extra,
  };
}
