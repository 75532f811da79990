/**
 * 4. Dispatch throughput: sessions a real dispatcher turns into LiveKit
 * dispatches per second, against a plain createRoom + createDispatch loop at
 * the same concurrency on the same LiveKit server.
 */
import type { Job } from 'bullmq';
import { livekitClients } from '../common/livekit.js';
import type { Redis } from '../common/redis.js';
import { buildRoomName, newRoomSuffix } from '../common/rooms.js';
import { dispatchMetadata, type SessionJob } from '../common/sessions/index.js';
import type { Outcome } from '../dispatcher/dispatch-session.js';
import { startDispatcher, type RunningDispatcher } from '../dispatcher/server.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, call, dropEnv, isolatedEnv, readyRedis } from './lib/env.js';
import type { Section } from './lib/report.js';
import { pool } from './lib/stats.js';

const COUNT = 300;
// A full batch: with fewer, the first measured run still paid for warming the dispatcher's code (V8's JIT).
const WARM_COUNT = 300;
const CONCURRENCY = 16;
const EMPTY_TIMEOUT = 60;

type Log = (m: string) => void;

export async function benchDispatch(runs: number, log: Log): Promise<Section> {
  // No agent worker joins these rooms: the join check (AGENT_JOIN_TIMEOUT) is pushed past the end of the run
  // so it neither re-dispatches nor fails sessions while later runs are measured, and dispatches go out at
  // once (DISPATCH_MODE=immediate) instead of waiting for worker slots that no worker here reports.
  const env = isolatedEnv('disp', { DISPATCH_MODE: 'immediate', DISPATCH_CONCURRENCY: String(CONCURRENCY), ROOM_EMPTY_TIMEOUT: String(EMPTY_TIMEOUT), AGENT_JOIN_TIMEOUT: '3600' });
  const { rooms, dispatch } = livekitClients(env as never);
  let api: ChildServer | undefined;
  let dispatcher: RunningDispatcher | undefined;
  let redis: Redis | undefined;
  const out = { disp: [] as number[], raw: [] as number[] };
  const notes: string[] = [];
  const made: string[] = [];
  const deleteRooms = async () => {
    const names = made.splice(0);
    await pool(names, CONCURRENCY, (name) => rooms.deleteRoom(name).catch(() => undefined));
  };
  try {
    api = await startChild('api.ts', env);
    const agent = await call(api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
    redis = await readyRedis(env.REDIS_URL!);
    // In this process, so its completions are seen as they happen.
    dispatcher = await startDispatcher(env);

    let waiting: { want: number; done: number; dispatched: number; last: number; resolve: () => void } | undefined;
    dispatcher.worker.on('completed', (job: Job<SessionJob>, outcome: Outcome) => {
      made.push(job.data.roomName);
      if (!waiting) return;
      waiting.done++;
      if (outcome?.result === 'dispatched') waiting.dispatched++;
      if (waiting.done >= waiting.want) {
        waiting.last = performance.now();
        waiting.resolve();
      }
    });

    let notDispatched = 0;
    for (let run = -1; run < runs; run++) {
      const n = run < 0 ? WARM_COUNT : COUNT;

      // The real dispatcher: a batch through the API, from its 202 to the last session dispatched.
      const w = { want: n, done: 0, dispatched: 0, last: 0, resolve: () => {} };
      const finished = new Promise<void>((resolve) => (w.resolve = resolve));
      waiting = w;
      const res = await call(api.url, 'POST', '/api/sessions/batch', { agentId: 'bench', count: n }, 202);
      const t0 = performance.now();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([finished, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`dispatcher: ${w.done}/${n} done after 180 s`)), 180_000)))]);
      clearTimeout(timer);
      waiting = undefined;
      const disp = n / ((w.last - t0) / 1000);
      notDispatched += n - w.dispatched;
      if (res.body.accepted !== n) throw new Error(`batch accepted ${res.body.accepted}`);

      // The plain loop: createRoom + createDispatch per session, same concurrency, same LiveKit.
      const names = Array.from({ length: n }, () => buildRoomName('bench', newRoomSuffix()));
      const t1 = performance.now();
      await pool(names, CONCURRENCY, async (roomName) => {
        await rooms.createRoom({ name: roomName, emptyTimeout: EMPTY_TIMEOUT, maxParticipants: 0 });
        made.push(roomName);
        const job: SessionJob = { sessionId: `raw-${roomName}`, agentId: 'bench', roomName, participantIdentity: 'user', requestedAt: new Date().toISOString() };
        await dispatch.createDispatch(roomName, env.AGENT_NAME!, { metadata: dispatchMetadata(job, agent.body.version) });
      });
      const raw = n / ((performance.now() - t1) / 1000);
      await deleteRooms();

      const line = `dispatcher ${disp.toFixed(0)} sessions/s (${w.dispatched}/${n} dispatched); raw loop ${raw.toFixed(0)} sessions/s`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      out.disp.push(disp);
      out.raw.push(raw);
    }
    notes.push(
      'Per session the dispatcher makes one LiveKit call (`createRoom` carrying the dispatch, where the baseline makes two) and, in Redis, the session lock, the status read, the record move (one script) and the lock release, and it queues the session\'s join check (a delayed job on the checks queue), beside BullMQ\'s own scripts to fetch and complete the job; the queue is rate-limited to DISPATCH_RATE_MAX (500) per second across dispatchers. Where the ratio misses its target, the difference is that Redis and Node work per session on the two cores the baseline\'s loop shares only with livekit-server.',
    );
    notes.push(notDispatched ? `${notDispatched} sessions ended otherwise than dispatched (counted in the throughput all the same).` : 'Every session of every run ended dispatched.');
  } finally {
    await dispatcher?.stop();
    await deleteRooms();
    await api?.stop();
    redis?.disconnect();
    await dropEnv(env);
  }
  return {
    title: '4. Dispatch throughput',
    method: [
      `The real dispatcher (\`startDispatcher\` with the API's settings, DISPATCH_CONCURRENCY=${CONCURRENCY}, DISPATCH_MODE=immediate since no worker runs here to report free slots, in the bench process) and the real API (its own process). Per run, \`POST /api/sessions/batch\` \`{"agentId":"bench","count":${COUNT}}\`; the time runs from its 202 until the worker's \`completed\` event of the last of the ${COUNT} sessions. A warm-up batch of ${WARM_COUNT} is discarded.`,
      `Baseline, interleaved run by run: a plain loop of \`RoomServiceClient.createRoom\` + \`AgentDispatchClient.createDispatch\` for ${COUNT} new rooms, ${CONCURRENCY} at once, on the same LiveKit server. Every room of both sides is deleted after each run (untimed).`,
    ],
    figures: [
      {
        name: `sessions dispatched per second (batch of ${COUNT})`,
        unit: 'sessions/s',
        runs: out.disp,
        baseline: { name: `createRoom + createDispatch loop, ${CONCURRENCY} at once`, unit: 'sessions/s', runs: out.raw },
        target: { on: 'ratio', op: '>=', limit: 0.8 },
      },
    ],
    notes,
  };
}
