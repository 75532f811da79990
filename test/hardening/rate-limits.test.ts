import { expect } from 'chai';
import { spawnApi, TEST_API_KEY, testApiEnv, type ApiProcess } from '../support/api.js';
import { OwnRedis } from '../support/redis-server.js';
import { until } from '../support/sessions.js';

/** `n` requests of one key, spread over `replicas` in turn, `concurrency` at a time; the statuses per replica. */
async function burst(replicas: ApiProcess[], n: number, concurrency = 8): Promise<{ statuses: number[][]; slowestMs: number }> {
  const statuses = replicas.map(() => [] as number[]);
  let next = 0;
  let slowestMs = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const r = i % replicas.length;
        const t = performance.now();
        const res = await fetch(`${replicas[r]!.url}/api/agents?limit=1`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } });
        await res.arrayBuffer();
        slowestMs = Math.max(slowestMs, performance.now() - t);
        statuses[r]!.push(res.status);
      }
    }),
  );
  return { statuses, slowestMs };
}

const admitted = (statuses: number[]) => statuses.filter((s) => s !== 429).length;

describe('rate limits across API replicas', function () {
  this.timeout(120_000);
  // A window far longer than any burst here, so each burst falls in one window even on a loaded machine.
  const LIMIT = 100;
  const WINDOW = 120;
  let redis: OwnRedis;
  const replicas: ApiProcess[] = [];

  beforeEach(async () => {
    redis = await OwnRedis.start();
    // Two API processes on one Redis and prefix: replicas of one deployment.
    const env = testApiEnv({ REDIS_URL: redis.url, API_RATE_LIMIT: String(LIMIT), API_RATE_WINDOW: String(WINDOW) });
    replicas.push(...(await Promise.all([spawnApi(env), spawnApi(env)])));
  });
  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.kill()));
    await redis.destroy();
  });

  it('when one key calls two replicas, then they share its budget: the limit holds over both within 10 %', async () => {
    const started = Date.now();
    const { statuses } = await burst(replicas, 3 * LIMIT);
    expect(Date.now() - started, 'the burst fell in one window').to.be.below(WINDOW * 1000);
    const total = statuses.reduce((n, s) => n + admitted(s), 0);
    expect(total, 'admitted over both replicas').to.be.within(LIMIT * 0.9, LIMIT * 1.1);
    // Both took part: each admitted some and refused some.
    for (const s of statuses) {
      expect(admitted(s)).to.be.above(0);
      expect(s.filter((x) => x === 429).length).to.be.above(0);
    }
    expect(statuses.flat().filter((s) => s !== 200 && s !== 429)).to.deep.equal([]);
  });

  it('when Redis is down, then each replica limits the key on its own with the same budget (as docs/OPERATIONS.md says), and they share it again once Redis is back', async () => {
    await redis.down('SIGKILL');
    // Both replicas see it (their readiness says so) before the burst.
    for (const r of replicas) await until(async () => (await fetch(`${r.url}/readyz`)).status === 503, 10_000, 100);
    const outage = await burst(replicas, 3 * LIMIT * replicas.length);
    for (const [i, s] of outage.statuses.entries()) {
      // The in-process fallback: this replica's own count of the key, from the outage's start.
      expect(admitted(s), `admitted by replica ${i} while Redis is down`).to.be.within(LIMIT * 0.9, LIMIT * 1.1);
    }
    // No request waits for Redis: the fallback answers at once (a liveness bound, not a benchmark).
    expect(outage.slowestMs).to.be.below(5_000);

    await redis.up();
    for (const r of replicas) await until(async () => (await fetch(`${r.url}/readyz`)).status === 200, 20_000, 100);
    // The limiter has a connection of its own, reconnecting on its own backoff (at most 2 s behind).
    await new Promise((r) => setTimeout(r, 2500));
    const back = await burst(replicas, 3 * LIMIT);
    const total = back.statuses.reduce((n, s) => n + admitted(s), 0);
    // Shared again: the outage's requests are not in Redis's count, so the key has its whole budget once, over both.
    expect(total, 'admitted over both replicas after Redis is back').to.be.within(LIMIT * 0.9, LIMIT * 1.1);
  });
});
