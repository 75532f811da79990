import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import { sessionIdOf } from '../../common/sessions/index.js';
import type { TestApi } from './api.js';

export async function until<T>(fn: () => Promise<T | undefined | false>, ms = 30_000, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Waits until every session of the batch left the queue; returns the final counts. */
export async function batchDone(api: TestApi, batchId: string, ms = 120_000) {
  return until(async () => {
    const r = await api.call('GET', `/api/batches/${batchId}`);
    return r.body.done ? r.body : undefined;
  }, ms, 250);
}

async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * For every session: its room on the LiveKit server holds exactly one dispatch
 * of our agent carrying its session id. Returns the number of dispatches seen.
 */
export async function expectExactlyOneDispatchEach(api: TestApi, sessionIds: string[], livekitUrl = api.env.LIVEKIT_URL!) {
  const { dispatch } = livekitClients({ ...api.env, LIVEKIT_URL: livekitUrl } as never);
  const sessions = await pool(sessionIds, 20, async (id) => (await api.call('GET', `/api/sessions/${id}`)).body);
  const counts = await pool(sessions, 20, async (s: { sessionId: string; roomName: string }) => {
    const all = await dispatch.listDispatch(s.roomName);
    return all.filter((d) => d.agentName === api.env.AGENT_NAME && sessionIdOf(d.metadata) === s.sessionId).length;
  });
  const wrong = sessions.filter((_, i) => counts[i] !== 1).map((s, i) => `${s.sessionId}:${counts[i]}`);
  expect(wrong, 'sessions without exactly one dispatch').to.deep.equal([]);
  expect(sessions.every((s: { status: string }) => s.status === 'dispatched')).to.equal(true);
  return counts.reduce((a, b) => a + b, 0);
}
