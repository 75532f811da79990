/**
 * 0. A session's agent, with the README's default settings: from
 * `POST /api/sessions` to the agent in the room and its greeting heard, as a
 * user sees it (a WebRTC client in the room), one session at a time and in
 * bursts; against raw LiveKit (createRoom + createDispatch) on the same worker.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessToken } from 'livekit-server-sdk';
import { livekitClients } from '../common/livekit.js';
import { createRedis, redisReady } from '../common/redis.js';
import { buildRoomName, newRoomSuffix } from '../common/rooms.js';
import { WorkerCapacity } from '../common/workers/capacity.js';
import { TestUser } from '../test/support/user.js';
import { startChild, type ChildServer } from './lib/child.js';
import { clientHandleErrors } from './lib/client-errors.js';
import { agentBody, call, dropEnv, isolatedEnv, stack } from './lib/env.js';
import { promValue, scrape } from './lib/prom.js';
import { fmt, type Section } from './lib/report.js';
import { median, percentile } from './lib/stats.js';
import { spawnWorker, type WorkerProcess } from './lib/worker.js';

/** Sessions one at a time per run: 5 runs make the 50 the issue asks for. */
const SEQUENTIAL = 10;
const BURSTS = [6, 20] as const;
/** A burst's users stay this long after their greeting, as a short conversation would. */
const STAY_MS = 5000;
/** How long a session may take to get its agent before it counts as never (∞). */
const JOIN_TIMEOUT_MS = 30_000;
const GREETING = 'Hello, this is the bench desk.';

type Log = (m: string) => void;

interface Outcome {
  /** ms from the request (POST, or the raw createRoom) to the agent participant seen by the user; ∞ if never. */
  joined: number;
  /** ms from the request to the first audible agent audio; ∞ if never. */
  audio: number;
}

const inf = (x: number | undefined) => (x === undefined ? Infinity : x);

async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, ms: number, every = 20): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(every);
  }
}

export async function benchPlacement(runs: number, log: Log): Promise<Section> {
  const env = isolatedEnv('placement');
  const { rooms, dispatch } = livekitClients(env as never);
  const redis = createRedis(stack.REDIS_URL);
  await redisReady(redis);
  const capacity = new WorkerCapacity(redis, env.QUEUE_PREFIX!, env.AGENT_NAME!);
  let api: ChildServer | undefined;
  let dispatcher: ChildServer | undefined;
  let fakes: ChildServer | undefined;
  let worker: WorkerProcess | undefined;
  const users = new Set<TestUser>();
  const figures = {
    seqJoinP50: [] as number[],
    seqJoinP99: [] as number[],
    seqAudioP99: [] as number[],
    rawJoinP50: [] as number[],
    rawJoinP99: [] as number[],
    rawAudioP99: [] as number[],
    burst: Object.fromEntries(BURSTS.map((n) => [n, { product: [] as number[], raw: [] as number[], lost: [] as number[], rawLost: [] as number[] }])),
  };
  const pooled = { join: [] as number[], audio: [] as number[], rawJoin: [] as number[], rawAudio: [] as number[] };
  const joinCheckRedispatches: number[] = [];
  const placedAgain: number[] = [];
  const runLines: string[] = [];
  let readyAfterMs = 0;
  let sizing = { capacity: 0, warm: 0 };

  /** A user joins, waits for the agent and its greeting, stays `stayMs` after it, leaves. */
  let joinRetries = 0;
  /** Joins as a client app would: a failed connection is tried again (counted in the notes). */
  const joinRoom = async (token: string): Promise<TestUser> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await TestUser.join(stack.LIVEKIT_URL, token, { microphone: true });
      } catch (err) {
        if (attempt >= 3) throw err;
        joinRetries++;
        await sleep(200);
      }
    }
  };
  const attend = async (token: string, t0: number, stayMs: number): Promise<Outcome & { user: TestUser }> => {
    const user = await joinRoom(token);
    users.add(user);
    await waitFor(() => user.agents.length > 0 && user.firstAgentAudioAt !== undefined, JOIN_TIMEOUT_MS);
    const out = { joined: inf(user.agents[0]?.joinedAt) - t0, audio: inf(user.firstAgentAudioAt) - t0, user };
    if (stayMs) await sleep(stayMs);
    await user.leave();
    users.delete(user);
    return out;
  };
  const productSession = async (stayMs: number): Promise<Outcome & { sessionId: string }> => {
    const t0 = Date.now();
    const r = await call(api!.url, 'POST', '/api/sessions', { agentId: 'bench' }, 202);
    const o = await attend(r.body.participantToken, t0, stayMs);
    return { joined: o.joined, audio: o.audio, sessionId: r.body.sessionId };
  };
  const rawSession = async (stayMs: number): Promise<Outcome & { room: string }> => {
    const room = buildRoomName('bench', newRoomSuffix());
    const t0 = Date.now();
    await rooms.createRoom({ name: room, emptyTimeout: 30 });
    await dispatch.createDispatch(room, env.AGENT_NAME!, { metadata: JSON.stringify({ agentId: 'bench' }) });
    const at = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, { identity: `user-${newRoomSuffix()}`, ttl: 600 });
    at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    const o = await attend(await at.toJwt(), t0, stayMs);
    // Untimed: the room goes, and an agent that came after its user left with it.
    await rooms.deleteRoom(room).catch(() => undefined);
    return { joined: o.joined, audio: o.audio, room };
  };
  /** Until the worker's slots are all free again: the previous session's job has ended. */
  const settle = async () => {
    await waitFor(async () => {
      const w = (await capacity.summary()).workers[0];
      return w !== undefined && w.busy === 0;
    }, 30_000, 50);
  };
  /** Until every warm process is up again: each phase starts on a worker after a quiet spell. */
  const warmPool = async () => {
    await waitFor(async () => {
      const w = (await capacity.summary()).workers[0];
      return w !== undefined && w.busy === 0 && w.warm >= w.idle;
    }, 180_000, 250);
    await sleep(1000);
  };
  /** Sessions the bench itself had to end: their user left before the agent came (it would wait SESSION_NO_USER_TIMEOUT). */
  let endedByBench = 0;
  /** Until every session is recorded over; one still open 10 s after its user left is ended with DELETE (untimed). */
  const ended = async (ids: string[]) => {
    const status = async (id: string) => (await call(api!.url, 'GET', `/api/sessions/${id}`, undefined, 200)).body.status as string;
    await waitFor(async () => (await Promise.all(ids.map(status))).every((s) => s === 'ended'), 10_000, 200);
    for (const id of ids) {
      if ((await status(id)) === 'ended') continue;
      endedByBench++;
      await call(api!.url, 'DELETE', `/api/sessions/${id}`);
    }
  };

  try {
    fakes = await startChild('fakes.ts', {});
    const providers = JSON.parse(fakes.url) as { openai: string; deepgram: string };
    api = await startChild('api.ts', { ...env, LOG_LEVEL: 'error' });
    await call(api.url, 'POST', '/api/agents/register', agentBody('bench', { greeting: GREETING }), 201);
    dispatcher = await startChild('dispatcher.ts', env);
    // The worker on its defaults: job slots, warm pool and CPU guard derived from the machine; only where to
    // find LiveKit, Redis, MongoDB and the providers is set.
    const startedAt = Date.now();
    worker = await spawnWorker({
      ...env,
      LOG_LEVEL: 'info',
      WORKER_HOST: '127.0.0.1',
      WORKER_HEALTH_PORT: '0',
      WORKER_METRICS_PORT: '0',
      OPENAI_BASE_URL: providers.openai,
      OPENAI_API_KEY: 'sk-bench',
      DEEPGRAM_BASE_URL: providers.deepgram,
      DEEPGRAM_API_KEY: 'dg-bench',
    });
    await waitFor(async () => (await fetch(`${api!.url}/readyz`)).status === 200, 120_000, 50);
    readyAfterMs = Date.now() - startedAt;
    // Every warm process up before measuring: the start-up is a one-off, measured by the tests.
    await waitFor(async () => {
      const w = (await capacity.summary()).workers[0];
      if (w) sizing = { capacity: w.capacity, warm: w.idle };
      return w !== undefined && w.warm >= w.idle;
    }, 180_000, 500);
    await sleep(2000);
    log(`  worker ready ${readyAfterMs} ms after start; ${sizing.capacity} job slots, ${sizing.warm} warm processes`);

    for (let run = 0; run < runs; run++) {
      // One at a time: the product, then raw LiveKit on the same worker.
      await warmPool();
      const seq: Outcome[] = [];
      for (let i = 0; i < SEQUENTIAL; i++) {
        const o = await productSession(0);
        if (process.env.BENCH_VERBOSE) log(`    ${new Date().toISOString()} ${o.sessionId}: agent ${fmt(o.joined)} ms, audio ${fmt(o.audio)} ms`);
        seq.push(o);
        await ended([o.sessionId]);
        await settle();
      }
      const raw: Outcome[] = [];
      await warmPool();
      for (let i = 0; i < SEQUENTIAL; i++) {
        const o = await rawSession(0);
        if (process.env.BENCH_VERBOSE) log(`    ${new Date().toISOString()} raw ${o.room}: agent ${fmt(o.joined)} ms, audio ${fmt(o.audio)} ms`);
        raw.push(o);
        await settle();
      }
      const j = seq.map((o) => o.joined);
      const rj = raw.map((o) => o.joined);
      figures.seqJoinP50.push(percentile(j, 50));
      figures.seqJoinP99.push(percentile(j, 99));
      figures.seqAudioP99.push(percentile(seq.map((o) => o.audio), 99));
      figures.rawJoinP50.push(percentile(rj, 50));
      figures.rawJoinP99.push(percentile(rj, 99));
      figures.rawAudioP99.push(percentile(raw.map((o) => o.audio), 99));
      pooled.join.push(...j);
      pooled.audio.push(...seq.map((o) => o.audio));
      pooled.rawJoin.push(...rj);
      pooled.rawAudio.push(...raw.map((o) => o.audio));
      const parts = [
        `one at a time: POST → agent joined p50 ${fmt(percentile(j, 50))} ms, max ${fmt(Math.max(...j))} ms; → greeting audio max ${fmt(Math.max(...seq.map((o) => o.audio)))} ms; raw: p50 ${fmt(percentile(rj, 50))} ms, max ${fmt(Math.max(...rj))} ms`,
      ];

      for (const n of BURSTS) {
        await warmPool();
        const before = promValue(await scrape(dispatcher.url), 'agent_runtime_redispatches_total', { outcome: 'redispatched' });
        const burst = await Promise.all(Array.from({ length: n }, () => productSession(STAY_MS)));
        await ended(burst.map((o) => o.sessionId));
        await settle();
        const views = await Promise.all(burst.map(async (o) => (await call(api!.url, 'GET', `/api/sessions/${o.sessionId}`, undefined, 200)).body));
        const after = promValue(await scrape(dispatcher.url), 'agent_runtime_redispatches_total', { outcome: 'redispatched' });
        joinCheckRedispatches.push(after - before);
        placedAgain.push(views.reduce((a, v) => a + (v.placement?.placedAgain ?? 0), 0));
        await warmPool();
        const rawBurst = await Promise.all(Array.from({ length: n }, () => rawSession(STAY_MS)));
        await settle();
        const slowest = Math.max(...burst.map((o) => o.joined));
        const rawSlowest = Math.max(...rawBurst.map((o) => o.joined));
        const f = figures.burst[n]!;
        f.product.push(slowest);
        f.raw.push(rawSlowest);
        f.lost.push(burst.filter((o) => o.joined === Infinity).length);
        f.rawLost.push(rawBurst.filter((o) => o.joined === Infinity).length);
        parts.push(
          `burst of ${n}: slowest agent ${fmt(slowest)} ms (p50 ${fmt(percentile(burst.map((o) => o.joined), 50))} ms), ${f.lost.at(-1)} without an agent, ${after - before} re-dispatched by the join check, ${placedAgain.at(-1)} placed again; raw: slowest ${fmt(rawSlowest)} ms, ${f.rawLost.at(-1)} of ${n} never got an agent`,
        );
      }
      const line = parts.join('; ');
      log(`  run ${run + 1}/${runs}: ${line}`);
      runLines.push(`Run ${run + 1}: ${line}.`);
    }
  } finally {
    await Promise.all([...users].map((u) => u.leave()));
    await worker?.kill(5000);
    await dispatcher?.stop();
    await api?.stop();
    await fakes?.stop();
    redis.disconnect();
    await dropEnv(env);
  }

  const burstFigures = BURSTS.flatMap((n) => {
    const f = figures.burst[n]!;
    const limit = n === 6 ? 8000 : 30_000;
    return [
      {
        name: `burst of ${n}: slowest POST → agent joined`,
        unit: 'ms',
        runs: f.product,
        baseline: { name: `raw: burst of ${n}, slowest dispatch → agent joined (∞: some never)`, unit: 'ms', runs: f.raw },
        target: { on: 'value' as const, op: '<=' as const, limit },
      },
      {
        name: `burst of ${n}: sessions without an agent`,
        unit: 'sessions',
        runs: f.lost,
        baseline: { name: `raw: burst of ${n}, dispatches no agent took`, unit: 'sessions', runs: f.rawLost },
        target: { on: 'value' as const, op: '<=' as const, limit: 0 },
      },
    ];
  });

  return {
    title: '0. A session gets its agent: default settings, a user in the room',
    method: [
      `As a user of the README gets it: the real API, dispatcher and agent worker (built, \`node dist/worker/main.js start\`, at nice 10 as in section 5) on their **default settings**: no WORKER_MAX_JOBS, WORKER_IDLE_PROCESSES, WORKER_LOAD_THRESHOLD or AGENT_JOIN_TIMEOUT set, DISPATCH_MODE=capacity. On this machine that is ${sizing.capacity} job slots and ${sizing.warm} warm processes (derived: 3 per core, memory allowing) and the CPU guard at 0.9. The worker was ready (\`/readyz\` 200) ${fmt(readyAfterMs)} ms after it was started. Each phase (the one-at-a-time sessions, each burst, product and raw alike) begins on a worker whose warm pool is full again: @livekit/agents starts job processes one at a time, about 2 s each here, so sessions arriving faster than that drain the pool (see the notes). Providers are the test suite's OpenAI and Deepgram fakes; the agent greets ("${GREETING}").`,
      `Each session is a real WebRTC client (@livekit/rtc-node, publishing a microphone as a browser does) joining the session's room with the \`participantToken\` of the 202. Times are from just before the \`POST /api/sessions\` to the agent participant appearing in that client's room, and to the first audible frame (RMS above 0.01) of the agent's audio track. One at a time: ${SEQUENTIAL} sessions per run, each user leaving once the greeting is heard and the next session asked for once the previous one is recorded \`ended\` and the worker's slot is free (${SEQUENTIAL * runs} sessions over the ${runs} runs; per run, p99 of ${SEQUENTIAL} is their maximum). Bursts: ${BURSTS.join(' and ')} sessions asked for at once, each user staying ${STAY_MS / 1000} s after its greeting; a session whose agent has not joined within ${JOIN_TIMEOUT_MS / 1000} s counts as ∞.`,
      `Baseline, in the same runs on the same worker: raw LiveKit, the path minus this project. \`createRoom\` + \`AgentDispatchClient.createDispatch\` (metadata naming the agent, no session behind it), timed from just before \`createRoom\`, the client joining with a token the bench mints; the same end points. LiveKit offers each job once; a job no worker takes when offered is never offered again. One at a time, with warm processes, is the unloaded end-to-end case: its p50 may be at most 60 ms over raw LiveKit's (what the API, the queue, the dispatcher and the session record add).`,
    ],
    figures: [
      { name: 'one at a time: POST → agent joined p50', unit: 'ms', runs: figures.seqJoinP50, baseline: { name: 'raw dispatch → agent joined p50', unit: 'ms', runs: figures.rawJoinP50 }, target: [{ on: 'value', op: '<=', limit: 700 }, { on: 'offset', op: '<=', limit: 60 }] },
      { name: 'one at a time: POST → agent joined p99', unit: 'ms', runs: figures.seqJoinP99, baseline: { name: 'raw dispatch → agent joined p99', unit: 'ms', runs: figures.rawJoinP99 }, target: { on: 'value', op: '<=', limit: 1500 } },
      { name: 'one at a time: POST → greeting audio p99', unit: 'ms', runs: figures.seqAudioP99, baseline: { name: 'raw dispatch → greeting audio p99', unit: 'ms', runs: figures.rawAudioP99 }, target: { on: 'value', op: '<=', limit: 2500 } },
      ...burstFigures,
    ],
    notes: [
      `Pooled over all ${pooled.join.length} sessions one at a time: POST → agent joined p50 ${fmt(percentile(pooled.join, 50))} ms, p99 ${fmt(percentile(pooled.join, 99))} ms, max ${fmt(Math.max(...pooled.join))} ms; POST → greeting audio p50 ${fmt(percentile(pooled.audio, 50))} ms, p99 ${fmt(percentile(pooled.audio, 99))} ms. Raw LiveKit: agent joined p50 ${fmt(percentile(pooled.rawJoin, 50))} ms, p99 ${fmt(percentile(pooled.rawJoin, 99))} ms; greeting audio p99 ${fmt(percentile(pooled.rawAudio, 99))} ms.`,
      `Join-check re-dispatches (AGENT_JOIN_TIMEOUT, the last resort) over all bursts: ${joinCheckRedispatches.reduce((a, b) => a + b, 0)}; sessions placed again by the placement check (LiveKit could not place the job) over all bursts: ${placedAgain.reduce((a, b) => a + b, 0)} (median per run ${fmt(median(placedAgain))}).`,
      `Sessions the bench ended itself (\`DELETE\`, untimed) because their user had left before the agent came: ${endedByBench}; raw rooms are deleted after each session.`,
      `Client connections tried again after a failed connect (a client app would too): ${joinRetries}; errors the client library threw from its handle finalizers (bench/lib/client-errors.ts) during the whole bench so far: ${clientHandleErrors()}.`,
      `A burst larger than the worker's ${sizing.capacity} slots waits in the queue, in order, and goes out as slots free (each user stays ${STAY_MS / 1000} s after its greeting): the slowest of a burst of 20 comes in the ${Math.ceil(20 / sizing.capacity)}th wave of sessions. Raw LiveKit offers every job at once; the worker declines those beyond its slots and LiveKit does not offer them again.`,
      ...runLines,
    ],
  };
}
