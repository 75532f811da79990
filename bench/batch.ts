/**
 * 3. A 10,000-session batch: POST /api/sessions/batch {agentId, count} until
 * its 202, against a raw queue.addBulk of 10,000 equivalent jobs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connectMongo, type Connection } from '../common/mongo.js';
import { sessionJobOptions, sessionsQueue } from '../common/queue.js';
import type { Redis } from '../common/redis.js';
import { buildRoomName, newRoomSuffix } from '../common/rooms.js';
import { newId, queuedRecord, type SessionJob } from '../common/sessions/index.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, call, deletePrefix, dropEnv, isolatedEnv, obliterateSessions, readyRedis } from './lib/env.js';
import type { Section } from './lib/report.js';

const COUNT = 10_000;

type Log = (m: string) => void;

/** Jobs shaped as SessionService builds them for `{agentId, count}`. */
function jobs(agentId: string, count: number): SessionJob[] {
  const batchId = newId('bat');
  return Array.from({ length: count }, () => {
    const sessionId = newId('ses');
    return {
      sessionId,
      agentId,
      roomName: buildRoomName(agentId, newRoomSuffix()),
      participantIdentity: `user-${sessionId.slice(4)}`,
      batchId,
      requestedAt: new Date().toISOString(),
    };
  });
}

/** Waits until the history writer has written every record of the batch to MongoDB. */
async function recordsWritten(conn: Connection, batchId: string, count: number): Promise<void> {
  const sessions = conn.collection('sessions');
  const deadline = Date.now() + 180_000;
  while ((await sessions.countDocuments({ batchId })) < count) {
    if (Date.now() > deadline) throw new Error(`batch ${batchId}: records not written within 180 s`);
    await sleep(250);
  }
}

export async function benchBatch(runs: number, log: Log): Promise<Section> {
  const env = isolatedEnv('batch');
  const rawPrefix = `${env.QUEUE_PREFIX}-raw`;
  const attempts = 20; // DISPATCH_ATTEMPTS default, as the API uses it
  let api: ChildServer | undefined;
  let redis: Redis | undefined;
  let conn: Connection | undefined;
  const out = { api: [] as number[], raw: [] as number[], settle: [] as number[], rawInsert: [] as number[] };
  try {
    api = await startChild('api.ts', env);
    await call(api.url, 'POST', '/api/agents/register', agentBody('bench'), 201);
    redis = await readyRedis(env.REDIS_URL!);
    conn = await connectMongo(env.MONGODB_URI!);
    const rawQueue = sessionsQueue(redis, rawPrefix);
    try {
      for (let run = -1; run < runs; run++) {
        const built = jobs('bench', COUNT);
        const data = built.map((j) => ({ name: 'session', data: j, opts: sessionJobOptions(j.sessionId, attempts) }));
        let t = performance.now();
        await rawQueue.addBulk(data);
        const raw = performance.now() - t;
        await rawQueue.obliterate({ force: true });
        // The history's baseline: the same 10,000 queued records inserted straight into MongoDB, 1,000 per insertMany.
        const rawDocs = built.map((j) => queuedRecord(j) as unknown as Record<string, unknown>);
        const rawColl = conn.collection('raw_sessions');
        t = performance.now();
        for (let i = 0; i < rawDocs.length; i += 1000) await rawColl.insertMany(rawDocs.slice(i, i + 1000), { ordered: false });
        const rawInsert = performance.now() - t;
        await rawColl.deleteMany({});

        t = performance.now();
        const res = await call(api.url, 'POST', '/api/sessions/batch', { agentId: 'bench', count: COUNT }, 202);
        const viaApi = performance.now() - t;
        if (res.body.accepted !== COUNT) throw new Error(`batch accepted ${res.body.accepted}`);
        await recordsWritten(conn, res.body.batchId, COUNT);
        const settle = performance.now() - t; // from the request, which the 202 follows
        await obliterateSessions(redis, env.QUEUE_PREFIX!);
        await conn.collection('sessions').deleteMany({});
        await conn.collection('batches').deleteMany({});

        const line = `API batch ${viaApi.toFixed(0)} ms to 202, history complete ${settle.toFixed(0)} ms after the request; raw addBulk ${raw.toFixed(0)} ms, raw insertMany ${rawInsert.toFixed(0)} ms`;
        if (run < 0) {
          log(`  warm-up: ${line}`);
          continue;
        }
        log(`  run ${run + 1}/${runs}: ${line}`);
        out.api.push(viaApi);
        out.raw.push(raw);
        out.settle.push(settle);
        out.rawInsert.push(rawInsert);
      }
    } finally {
      await rawQueue.close();
    }
  } finally {
    await api?.stop();
    if (redis) await deletePrefix(redis, rawPrefix);
    redis?.disconnect();
    await conn?.close();
    await dropEnv(env);
  }
  return {
    title: '3. A 10,000-session batch',
    method: [
      `\`POST /api/sessions/batch\` \`{"agentId":"bench","count":${COUNT}}\` to the real API (own process, prefix and database), timed from the request until its 202 response has been read in full (it lists the ${COUNT.toLocaleString('en-US')} session ids). Baseline, interleaved run by run: one raw \`queue.addBulk\` of ${COUNT.toLocaleString('en-US')} jobs on a queue of its own prefix, with the \`SessionJob\` data shape and \`sessionJobOptions(sessionId, 20)\` (jobs built before the clock starts).`,
      'History: from the same request until MongoDB holds all the batch\'s session records (the history writer, polled by count every 250 ms). Baseline, in the same run: the same 10,000 queued records inserted straight into a collection of the same database, 1,000 per `insertMany` (unordered), one after another. Then both queues are obliterated and the records deleted.',
    ],
    figures: [
      {
        name: `${COUNT.toLocaleString('en-US')}-session batch accepted (time to 202)`,
        unit: 'ms',
        runs: out.api,
        baseline: { name: `raw addBulk of ${COUNT.toLocaleString('en-US')} jobs`, unit: 'ms', runs: out.raw },
        target: { on: 'ratio', op: '<=', limit: 1.5 },
      },
      {
        name: `history of the ${COUNT.toLocaleString('en-US')} sessions complete in MongoDB (from the request)`,
        unit: 'ms',
        runs: out.settle,
        baseline: { name: `raw insertMany of ${COUNT.toLocaleString('en-US')} records`, unit: 'ms', runs: out.rawInsert },
        target: { on: 'value', op: '<=', limit: 3000 },
      },
    ],
  };
}
