/**
 * 1b. Registry write throughput: POST /api/agents/register with a changed
 * body each time (every call a new version), one at a time and 8 in flight,
 * against raw mongoose insertOne on the same MongoDB-compatible server.
 */
import { agentConfigInput, agentModels, AgentStore, versionId } from '../common/agents/index.js';
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
  const parts = { http: [] as number[], server: [] as number[], insert: [] as number[], move: [] as number[] };
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
      const served = { before: await registerDuration(api.url), after: { sum: 0, count: 0 } };
      const seq = await throughput(N_SEQ, 1, (_w, i) => register('seq', i));
      served.after = await registerDuration(api.url);
      const rawPar = await throughput(N_PAR, IN_FLIGHT, (w, i) => coll.insertOne(versionDoc(`par-${w}`, i)));
      const par = await throughput(N_PAR, IN_FLIGHT, (w, i) => register(`par-${w}`, i));
      // The parts: this client's HTTP round trip to the API (GET /healthz: no key, no store); the API's own
      // time per sequential register (its request-duration histogram, read before and after them); and the
      // register's two MongoDB writes made alone through AgentStore into the API's own (indexed) collections.
      const http = 1000 / (await throughput(N_SEQ, 1, () => fetch(`${api.url}/healthz`).then((r) => r.text())));
      const server = (served.after.sum - served.before.sum) / Math.max(1, served.after.count - served.before.count) * 1000;
      const own = await connectMongo(env.MONGODB_URI!);
      let insert = 0;
      let move = 0;
      try {
        const store = new AgentStore(await agentModels(own));
        for (let i = 1; i <= N_SEQ; i++) {
          const row = { ...versionDoc('parts', i), spec: agentConfigInput.parse(versionDoc('parts', i).spec), _id: versionId('parts', i) };
          let t = performance.now();
          await store.insertVersion(row);
          insert += performance.now() - t;
          t = performance.now();
          await store.moveCurrent({ _id: 'parts', version: i, spec: row.spec, deleted: false, createdAt: row.createdAt, updatedAt: row.createdAt });
          move += performance.now() - t;
        }
      } finally {
        await own.close();
      }
      insert /= N_SEQ;
      move /= N_SEQ;
      const line = `register ${seq.toFixed(0)}/s sequential, ${par.toFixed(0)}/s ×${IN_FLIGHT}; insertOne ${rawSeq.toFixed(0)}/s, ${rawPar.toFixed(0)}/s ×${IN_FLIGHT}; parts: HTTP round trip ${http.toFixed(2)} ms, API's own time ${server.toFixed(2)} ms, AgentStore insertVersion ${insert.toFixed(2)} ms, moveCurrent ${move.toFixed(2)} ms`;
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
      parts.server.push(server);
      parts.insert.push(insert);
      parts.move.push(move);
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

/** The API's own request-duration histogram for POST /api/agents/register: seconds summed, and the count. */
async function registerDuration(apiUrl: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  const value = (kind: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`agent_runtime_http_request_duration_seconds_${kind}{`) && l.includes('route="/api/agents/register"'));
    return Number(line?.split(' ').pop() ?? 0);
  };
  return { sum: value('sum'), count: value('count') };
}

/** What a sequential register is made of, each part measured in the same runs: the floor they put under it. */
function registerParts(parts: { http: number[]; server: number[]; insert: number[]; move: number[] }, registers: number, inserts: number): string {
  const [http, server, insert, move] = [median(parts.http), median(parts.server), median(parts.insert), median(parts.move)];
  const ms = (v: number) => `${fmt(v)} ms`;
  const runs = (v: number[]) => v.map(fmt).join(', ');
  const writes = insert + move;
  return (
    `Where a sequential register's ${ms(1000 / registers)} go (medians over the runs, each part measured in every run): ` +
    `the API's own time per register ${ms(server)} (its request-duration histogram over the sequential registers; runs: ${runs(parts.server)}); this client's HTTP round trip ${ms(http)} (GET /healthz; runs: ${runs(parts.http)}); ` +
    `and of the API's time, its two MongoDB writes made alone through AgentStore into the API's own collections, ${N_SEQ} one at a time: insertVersion ${ms(insert)} (runs: ${runs(parts.insert)}) and moveCurrent's guarded upsert ${ms(move)} (runs: ${runs(parts.move)}), against ${ms(1000 / inserts)} for the baseline's raw insert into an unindexed collection. ` +
    `The two writes alone, one after the other, cap a register at ${fmt(1000 / writes)} writes/s, ${fmt(1000 / writes / inserts)}× the raw insert rate, before the HTTP round trip, the rate limit and cache reads in Redis and the API's own work. ` +
    'On the embedded store every write is an SQLite transaction, one at a time, the version row carries its indexes, and the upsert reads before it writes. What would move it: a real MongoDB (writes well under a millisecond, so the HTTP path dominates), or one MongoDB write per register instead of two (`agents` following behind the version row, as the session history follows the session records).'
  );
}
