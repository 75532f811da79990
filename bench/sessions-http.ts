/**
 * 2. POST /api/sessions under load: autocannon, 100 connections, against the
 * real API and against a bare Express 5 hello-world on the same machine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { connectMongo, type Connection } from '../common/mongo.js';
import type { Redis } from '../common/redis.js';
import { startChild, type ChildServer } from './lib/child.js';
import { cpuShares, sharesText } from './lib/cpu-profile.js';
import { OwnRedis } from '../test/support/redis-server.js';
import { agentBody, BENCH_API_KEY, call, dropEnv, isolatedEnv, obliterateSessions, readyRedis } from './lib/env.js';
import { fmt, type Section } from './lib/report.js';
import { median } from './lib/stats.js';

const CONNECTIONS = 100;
const DURATION_S = 5;
const WARM_S = 2;

type Log = (m: string) => void;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  bad: number;
  /** What the not-2xx answers were: status codes, connection errors, timeouts. */
  badKinds: Record<string, number>;
}

async function load(url: string, seconds: number, headers: Record<string, string>, body: string): Promise<Load> {
  const r = await autocannon({ url, method: 'POST', connections: CONNECTIONS, pipelining: 1, duration: seconds, headers, body });
  const ok = r['2xx'];
  const badKinds: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(r.statusCodeStats ?? {})) if (!code.startsWith('2') && count) badKinds[`HTTP ${code}`] = count;
  if (r.errors) badKinds['connection errors'] = r.errors - r.timeouts;
  if (r.timeouts) badKinds.timeouts = r.timeouts;
  return { rps: ok / r.duration, p50: r.latency.p50, p99: r.latency.p99, ok, bad: r.non2xx + r.errors, badKinds };
}

/** Waits until the API's history writer has stopped adding session records. */
async function recordsSettled(conn: Connection): Promise<number> {
  const sessions = conn.collection('sessions');
  let last = -1;
  for (let i = 0; i < 150; i++) {
    const n = await sessions.countDocuments({});
    if (n === last) return n;
    last = n;
    await sleep(200);
  }
  return last;
}

/**
 * Where the CPU goes: one more run of each side, not counted, with the V8
 * profiler on for the load window only; CPU per request and its owners.
 */
async function profiled(env: Record<string, string>, body: string, auth: Record<string, string>, json: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-profile-'));
  const penv = isolatedEnv('http-profile', { BENCH_CPU_PROFILE: dir });
  const sides: { name: string; script: string; path: string; headers: Record<string, string>; env: Record<string, string> }[] = [
    { name: 'api', script: 'api.ts', path: '/api/sessions', headers: auth, env: penv },
    { name: 'layers', script: 'express-layers.ts', path: '/api/sessions', headers: auth, env: { NODE_ENV: env.NODE_ENV!, BENCH_CPU_PROFILE: dir } },
    { name: 'express', script: 'express-hello.ts', path: '/', headers: json, env: { NODE_ENV: env.NODE_ENV!, BENCH_CPU_PROFILE: dir } },
  ];
  const label: Record<string, string> = { api: 'the API', layers: "bare Express with the API's HTTP layers and token (bench/servers/express-layers.ts)", express: 'bare Express' };
  const perRequest: Record<string, number> = {};
  const out: string[] = [];
  try {
    for (const side of sides) {
      const server = await startChild(side.script, side.env);
      try {
        if (side.name === 'api') await call(server.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
        await load(`${server.url}${side.path}`, WARM_S, side.headers, body);
        process.kill(server.pid, 'SIGUSR2');
        await sleep(200);
        const l = await load(`${server.url}${side.path}`, DURATION_S, side.headers, body);
        await server.stop();
        const { shares, idle, busyMs } = cpuShares(dir, side.name);
        const cpu = (perRequest[side.name] = busyMs / Math.max(1, l.ok + l.bad));
        out.push(
          `${label[side.name]}: ${l.rps.toFixed(0)} req/s under the profiler, its main thread busy ${((1 - idle) * 100).toFixed(0)} % of the time, ${cpu.toFixed(3)} ms of CPU per request; by owner: ${sharesText(shares)}`,
        );
      } finally {
        await server.stop();
      }
    }
  } finally {
    await dropEnv(penv).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return (
    `Where the CPU goes: after the measured runs, one more run of each side (not counted), each server profiled by V8 over its ${DURATION_S} s load window only (\`node:inspector\` Profiler, started by SIGUSR2; bench/servers/profiler.ts); each sample is charged to the nearest frame on its stack that is a package or this project's code ((node) is Node's own HTTP parsing, sockets and timers, (gc) garbage collection; bench/lib/cpu-profile.ts). ` +
    `${out.join('; ')}. The throughput is bound by the API process's one core: its CPU per request against bare Express's is the ratio to move. ` +
    `The HTTP layers every API request passes (request metrics, helmet's security headers, the API key check, the JSON body check) and the participant token of the 202, with no Redis, queue or record behind them, already cost ${perRequest.layers!.toFixed(3)} ms against bare Express's ${perRequest.express!.toFixed(3)} ms, ` +
    `a CPU ratio of ${(perRequest.express! / perRequest.layers!).toFixed(2)} before any of the API's own work (rate limit, queue, record; the whole API ${perRequest.api!.toFixed(3)} ms in the same profiled runs, which are noisy: compare within a run). Of what they add to bare Express, the token is the largest part (livekit-server-sdk's AccessToken: jose and @bufbuild/protobuf in the owners above), then the router walking more layers and helmet. So ≥ 0.5× on one core is out of reach with these layers whatever the Redis work costs; what moves the throughput is more API processes (the API keeps no state of its own: one per core, or replicas), which this two-core machine, shared with its load generator and its Redis, cannot show.`
  );
}

export async function benchSessionsHttp(runs: number, log: Log): Promise<Section> {
  const env = isolatedEnv('http');
  let api: ChildServer | undefined;
  let hello: ChildServer | undefined;
  let redis: Redis | undefined;
  let conn: Connection | undefined;
  const out = { rps: [] as number[], p50: [] as number[], p99: [] as number[], eRps: [] as number[], eP50: [] as number[], eP99: [] as number[], always: [] as number[], everysec: [] as number[] };
  const notes: string[] = [];
  // What durability costs: the same API on Redis servers of its own, AOF fsynced every second (the usual setting) and on every write.
  const durable: { fsync: 'everysec' | 'always'; redis: OwnRedis; api?: ChildServer; env: Record<string, string> }[] = [];
  try {
    api = await startChild('api.ts', env);
    for (const fsync of ['everysec', 'always'] as const) {
      const redis = await OwnRedis.start(fsync);
      const d: (typeof durable)[number] = { fsync, redis, env: isolatedEnv(`http-${fsync}`, { REDIS_URL: redis.url }) };
      durable.push(d);
      d.api = await startChild('api.ts', d.env);
      await call(d.api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
    }
    hello = await startChild('express-hello.ts', { NODE_ENV: env.NODE_ENV! });
    await call(api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
    redis = await readyRedis(env.REDIS_URL!);
    conn = await connectMongo(env.MONGODB_URI!);
    const body = JSON.stringify({ agentId: 'bench' });
    const json = { 'content-type': 'application/json' };
    const auth = { ...json, authorization: `Bearer ${BENCH_API_KEY}` };

    const cleanUp = async () => {
      const records = await recordsSettled(conn!);
      await obliterateSessions(redis!, env.QUEUE_PREFIX!);
      await conn!.collection('sessions').deleteMany({});
      return records;
    };

    const bad: Record<string, number> = {};
    const addBad = (side: string, kinds: Record<string, number>) => {
      for (const [k, n] of Object.entries(kinds)) bad[`${side}: ${k}`] = (bad[`${side}: ${k}`] ?? 0) + n;
    };
    for (let run = -1; run < runs; run++) {
      const seconds = run < 0 ? WARM_S : DURATION_S;
      const e = await load(`${hello.url}/`, seconds, json, body);
      const a = await load(`${api.url}/api/sessions`, seconds, auth, body);
      const records = await cleanUp();
      const fs: Record<string, number> = {};
      for (const d of durable) {
        fs[d.fsync] = (await load(`${d.api!.url}/api/sessions`, seconds, auth, body)).rps;
        const r = await readyRedis(d.redis.url);
        await obliterateSessions(r, d.env.QUEUE_PREFIX!);
        r.disconnect();
      }
      const line = `API ${a.rps.toFixed(0)} req/s p50 ${a.p50} ms p99 ${a.p99} ms (${a.bad ? JSON.stringify(a.badKinds) : 'all 202'}, ${records} records written); Express ${e.rps.toFixed(0)} req/s p50 ${e.p50} ms p99 ${e.p99} ms; own Redis everysec ${fs.everysec!.toFixed(0)} req/s, always ${fs.always!.toFixed(0)} req/s`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      if (records < a.ok) notes.push(`run ${run + 1}: ${a.ok} sessions accepted but ${records} records written behind the queue`);
      addBad('API', a.badKinds);
      addBad('bare Express', e.badKinds);
      out.rps.push(a.rps);
      out.p50.push(a.p50);
      out.p99.push(a.p99);
      out.eRps.push(e.rps);
      out.eP50.push(e.p50);
      out.eP99.push(e.p99);
      out.everysec.push(fs.everysec!);
      out.always.push(fs.always!);
    }
    notes.push(await profiled(env, body, auth, json));
    // A closed loop: latency follows throughput (Little's law), so the latency ratios say what the throughput ratio says.
    notes.push(
      `Latency in this closed loop (each of the ${CONNECTIONS} connections sends its next request when its last is answered) is about connections ÷ throughput: ` +
        `${fmt((CONNECTIONS / median(out.rps)) * 1000)} ms for the API against its measured p50 of ${fmt(median(out.p50))} ms, ${fmt((CONNECTIONS / median(out.eRps)) * 1000)} ms for bare Express against ${fmt(median(out.eP50))} ms. ` +
        'So the latency ratios are bound to the throughput ratio: what moves throughput (CPU per request, above) moves the p99 with it.',
    );
    const kinds = Object.entries(bad);
    notes.push(
      kinds.length
        ? `Not counted in the throughput, over all measured runs: ${kinds.map(([k, n]) => `${k} ×${n}`).join('; ')}.`
        : 'Every response of every measured run was a 202.',
    );
  } finally {
    await hello?.stop();
    await api?.stop();
    for (const d of durable) {
      await d.api?.stop();
      await dropEnv(d.env).catch(() => undefined); // its Redis goes with it; this drops its database
      await d.redis.destroy();
    }
    redis?.disconnect();
    await conn?.close();
    await dropEnv(env);
  }
  return {
    title: '2. POST /api/sessions under load',
    method: [
      `autocannon (in the bench process) with ${CONNECTIONS} connections, pipelining 1, ${DURATION_S} s per run, body \`{"agentId":"bench"}\` with \`Authorization: Bearer\`, against the real API (startApi in a process of its own, own prefix and database, agent registered first). Baseline, interleaved run by run: the same load against a bare Express 5 app in a process of its own (\`express.json()\` and \`app.post('/', (req, res) => res.status(202).json({ ok: true }))\`). A ${WARM_S} s warm-up of each is discarded.`,
      'The API runs with `API_RATE_LIMIT=10000000`: the per-key limit (default 2,000 requests per second, one key here) would otherwise cap the figure at its budget and answer the rest 429; the limiter still runs on every request. Throughput counts 2xx responses only, divided by the run time. Latencies are autocannon\'s p50/p99 (ms, 1 ms resolution). After each run the API\'s queue is obliterated (BullMQ `Queue.obliterate({force: true})`, queue `sessions`, same prefix) and its session records deleted, once its history writer has settled, so every run starts from the same state.',
      `Durability: two more API processes, each on a redis-server of its own started by the bench (AOF on, \`appendfsync everysec\` for one, \`always\` for the other, same machine and disk), take the same load in every run; their throughputs compare what a Redis crash may cost (everysec: the writes of up to the last second; always: nothing acknowledged) with what it costs to close that.`,
    ],
    figures: [
      { name: 'throughput', unit: 'req/s', runs: out.rps, baseline: { name: 'bare Express throughput', unit: 'req/s', runs: out.eRps }, target: { on: 'ratio', op: '>=', limit: 0.5 } },
      { name: 'latency p50', unit: 'ms', runs: out.p50, baseline: { name: 'bare Express p50', unit: 'ms', runs: out.eP50 } },
      { name: 'latency p99', unit: 'ms', runs: out.p99, baseline: { name: 'bare Express p99', unit: 'ms', runs: out.eP99 }, target: { on: 'ratio', op: '<=', limit: 2 } },
      {
        name: 'throughput, Redis appendfsync always',
        unit: 'req/s',
        runs: out.always,
        baseline: { name: 'throughput, Redis appendfsync everysec', unit: 'req/s', runs: out.everysec },
      },
    ],
    notes,
  };
}
