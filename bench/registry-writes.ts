/**
 * 1b. Registry write throughput: POST /api/agents/register with a changed
 * body each time (every call a new version), one at a time and 8 in flight,
 * against raw mongoose insertOne on the same MongoDB-compatible server.
 */
import { connectMongo, type Connection } from '../common/mongo.js';
import { startChild } from './lib/child.js';
import { agentBody, call, dropEnv, isolatedEnv, mongoUri, uniqueName } from './lib/env.js';
import { fmt, type Section } from './lib/report.js';
import { median } from './lib/stats.js';

const N_SEQ = 60;
const N_PAR = 120;
const IN_FLIGHT = 8;
const WARM = 16;

type Log = (m: string) => void;

/** `n` operations by `workers` workers, worker w doing op(w, i) in order; operations per second. */
async function throughput(n: number, workers: number, op: (worker: number, i: number) => Promise<unknown>): Promise<number> {
  const per = Math.ceil(n / workers);
  const t = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < per; i++) await op(w, i);
    }),
  );
  return (per * workers) / ((performance.now() - t) / 1000);
}

const versionDoc = (agentId: string, version: number) => ({
  agentId,
  version,
  spec: agentBody(agentId, { instructions: `You are a helpful voice assistant. Revision ${version}.` }),
  deleted: false,
  createdAt: new Date(),
});

export async function benchRegistryWrites(runs: number, log: Log): Promise<Section> {
  const out = { seq: [] as number[], par: [] as number[], rawSeq: [] as number[], rawPar: [] as number[] };
  // A register's parts, each timed alone in the same runs (ms per operation, one at a time).
  const parts = { http: [] as number[], insert: [] as number[], upsert: [] as number[] };
  for (let run = -1; run < runs; run++) {
    // A fresh API and database per run: every run writes into collections of the same size.
    const env = isolatedEnv('reg');
    const rawDb = uniqueName('raw');
    let raw: Connection | undefined;
    const api = await startChild('api.ts', env);
    try {
      raw = await connectMongo(mongoUri(rawDb));
      const coll = raw.collection('agent_versions_raw');
      const register = (id: string, rev: number) =>
        call(api.url, 'POST', '/api/agents/register', agentBody(id, { instructions: `You are a helpful voice assistant. Revision ${rev}.` })).then((r) => {
          if (r.status !== 200 && r.status !== 201) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
        });
      for (let i = 0; i < WARM; i++) await register('warm', i);
      for (let i = 0; i < WARM; i++) await coll.insertOne(versionDoc('warm', i));

      const rawSeq = await throughput(N_SEQ, 1, (_w, i) => coll.insertOne(versionDoc('seq', i)));
      const seq = await throughput(N_SEQ, 1, (_w, i) => register('seq', i));
      const rawPar = await throughput(N_PAR, IN_FLIGHT, (w, i) => coll.insertOne(versionDoc(`par-${w}`, i)));
      const par = await throughput(N_PAR, IN_FLIGHT, (w, i) => register(`par-${w}`, i));
      // The parts: this client's HTTP round trip to the API (GET /healthz: no key, no store), and the guarded
      // upsert that moves `agents` (AgentStore.moveCurrent's filter and update) on a raw collection.
      const http = 1000 / (await throughput(N_SEQ, 1, () => fetch(`${api.url}/healthz`).then((r) => r.text())));
      const agents = raw.collection<{ _id: string; version: number }>('agents_raw');
      const upsert = 1000 / (await throughput(N_SEQ, 1, (_w, i) => agents.updateOne({ _id: 'seq', version: { $lt: i + 1 } }, { $set: { ...versionDoc('seq', i + 1), updatedAt: new Date() } }, { upsert: true })));
      const line = `register ${seq.toFixed(0)}/s sequential, ${par.toFixed(0)}/s ×${IN_FLIGHT}; insertOne ${rawSeq.toFixed(0)}/s, ${rawPar.toFixed(0)}/s ×${IN_FLIGHT}; parts: HTTP round trip ${http.toFixed(2)} ms, guarded upsert ${upsert.toFixed(2)} ms`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      out.seq.push(seq);
      out.par.push(par);
      out.rawSeq.push(rawSeq);
      out.rawPar.push(rawPar);
      parts.http.push(http);
      parts.insert.push(1000 / rawSeq);
      parts.upsert.push(upsert);
    } finally {
      await api.stop();
      await raw?.dropDatabase().catch(() => undefined);
      await raw?.close();
      await dropEnv(env);
    }
  }
  return {
    title: '1b. Registry writes (issue 3)',
    method: [
      `Per run a fresh API process (startApi, own prefix and database) takes ${N_SEQ} \`POST /api/agents/register\` one at a time (one agent, the instructions changed each call, so every call writes a new version), then ${N_PAR} with ${IN_FLIGHT} in flight (${IN_FLIGHT} agents, one writer each, so no write races another for a version). ${WARM} writes warm each side up first, untimed.`,
      `Baseline: the same counts of raw mongoose \`insertOne\` (\`connection.collection(...).insertOne\`) of a document shaped like an \`agent_versions\` row, into a fresh database on the same server, one at a time and ${IN_FLIGHT} in flight.`,
    ],
    figures: [
      {
        name: 'register, sequential',
        unit: 'writes/s',
        runs: out.seq,
        baseline: { name: 'raw insertOne, sequential', unit: 'inserts/s', runs: out.rawSeq },
        target: { on: 'ratio', op: '>=', limit: 0.25 },
      },
      { name: `register, ${IN_FLIGHT} in flight`, unit: 'writes/s', runs: out.par, baseline: { name: `raw insertOne, ${IN_FLIGHT} in flight`, unit: 'inserts/s', runs: out.rawPar } },
    ],
    notes: [
      'The ratio says how many raw inserts one registry write costs. A changing register is one Redis read (the agent\'s cache entry), two MongoDB writes in a row (the version row by its `_id`, then `agents` moved forward by a guarded upsert, at once with one Redis script: cache entry and change message), behind the HTTP path (API key, rate limit, validation, canonical comparison).',
      registerParts(parts, median(out.seq), median(out.rawSeq)),
    ],
  };
}

/** What a sequential register is made of, each part timed alone in the same runs: the floor they put under it. */
function registerParts(parts: { http: number[]; insert: number[]; upsert: number[] }, registers: number, inserts: number): string {
  const [http, insert, upsert] = [median(parts.http), median(parts.insert), median(parts.upsert)];
  const floor = http + insert + upsert;
  const ms = (v: number) => `${fmt(v)} ms`;
  return (
    `Where a sequential register's ${ms(1000 / registers)} go (each part timed alone, ${N_SEQ} one at a time, in every run; medians): ` +
    `this client's HTTP round trip to the API ${ms(http)} (GET /healthz; runs: ${parts.http.map(fmt).join(', ')}), a raw insertOne ${ms(insert)} (the baseline's own), ` +
    `a raw guarded upsert as AgentStore.moveCurrent makes it ${ms(upsert)} (runs: ${parts.upsert.map(fmt).join(', ')}). ` +
    `Those three in a row are ${ms(floor)}, so on this store a register cannot beat ${fmt(1000 / floor)} writes/s, ${fmt(insert / floor)}× the raw insert rate, before its Redis round trips, validation and the API's own work (the rest of the ${ms(1000 / registers)}; the raw insert alone runs at ${fmt(inserts)}/s). ` +
    'On the embedded store every write is an SQLite transaction, one at a time, and the upsert reads before it writes. What would move it: a real MongoDB (writes well under a millisecond, so the HTTP path dominates), or one MongoDB write per register instead of two (`agents` following behind the version row, as the session history follows the session records).'
  );
}
