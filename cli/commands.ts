import { readFileSync } from 'node:fs';
import type { Client } from './client.js';
import { ProgressView, type BatchProgress } from './progress.js';

/** What each command does, given a client; printing is the caller's through `out`. */
export interface Output {
  json: boolean;
  /** A result: JSON as it is with --json, else the human line(s). */
  result(value: unknown, human: () => string): void;
  /** Notes for people (warnings): stderr, so --json output stays parseable. */
  note(line: string): void;
}

export async function registerAgent(api: Client, out: Output, file: string): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  const agent = await api.call<{ id: string; version: number; warnings?: string[] }>('POST', '/api/agents/register', body);
  for (const w of agent.warnings ?? []) out.note(`warning: ${w}`);
  out.result(agent, () => `agent ${agent.id} at version ${agent.version}`);
}

export async function listAgents(api: Client, out: Output): Promise<void> {
  const items: { id: string; name: string; version: number; updatedAt?: string }[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: typeof items; nextCursor: string | null } = await api.call('GET', `/api/agents?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  out.result(items, () => (items.length ? items.map((a) => `${a.id}\tv${a.version}\t${a.name}`).join('\n') : 'no agents'));
}

export async function rollbackAgent(api: Client, out: Output, id: string, version: number): Promise<void> {
  const agent = await api.call<{ id: string; version: number }>('POST', `/api/agents/${encodeURIComponent(id)}/rollback`, { version });
  out.result(agent, () => `agent ${agent.id} now at version ${agent.version} (a copy of version ${version})`);
}

export async function createSessions(api: Client, out: Output, agentId: string, count: number, wait: boolean): Promise<BatchProgress | undefined> {
  if (count <= 1) {
    const s = await api.call<{ sessionId: string; roomName: string; status: string }>('POST', '/api/sessions', { agentId });
    out.result(s, () => `session ${s.sessionId} ${s.status} in room ${s.roomName}`);
    return undefined;
  }
  const batch = await api.call<{ batchId: string; accepted: number; sessionIds: string[] }>('POST', '/api/sessions/batch', { agentId, count });
  if (!wait) {
    out.result(batch, () => `batch ${batch.batchId}: ${batch.accepted} sessions accepted`);
    return undefined;
  }
  if (!out.json) out.note(`batch ${batch.batchId}: ${batch.accepted} sessions accepted`);
  const last = await watch(api, out, batch.batchId);
  out.result({ ...batch, counts: last.counts, done: last.done }, () => summary(last));
  return last;
}

export async function watchBatch(api: Client, out: Output, batchId: string): Promise<void> {
  const last = await watch(api, out, batchId);
  out.result(last, () => summary(last));
}

function summary(p: BatchProgress): string {
  const counts = Object.entries(p.counts).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
  return `batch ${p.batchId}: ${p.accepted} sessions${counts ? `, ${counts}` : ''}${p.done ? '' : ' (not done)'}`;
}

/** Follows the batch's event stream until `done` (the bar on stderr unless --json: stdout keeps the result). */
async function watch(api: Client, out: Output, batchId: string): Promise<BatchProgress> {
  const view = out.json ? undefined : new ProgressView(process.stderr.isTTY ? process.stderr : process.stdout);
  let last: BatchProgress | undefined;
  try {
    for await (const e of api.events(`/api/batches/${encodeURIComponent(batchId)}/events`)) {
      if (e.event === 'error') throw new Error(`batch ${batchId}: ${e.data?.detail ?? 'progress unavailable'}`);
      last = e.data as BatchProgress;
      view?.update(last);
      if (last.done) break;
    }
  } finally {
    view?.end();
  }
  // The stream ends by itself after an hour: the latest counts then.
  return last ?? (await api.call<BatchProgress>('GET', `/api/batches/${encodeURIComponent(batchId)}`));
}

export async function getSession(api: Client, out: Output, id: string): Promise<void> {
  const s = await api.call<{ sessionId: string; agentId: string; status: string; roomName: string; failureReason?: string }>('GET', `/api/sessions/${encodeURIComponent(id)}`);
  out.result(s, () => `session ${s.sessionId} (agent ${s.agentId}) ${s.status}${s.failureReason ? ` (${s.failureReason})` : ''} in room ${s.roomName}`);
}

export async function listSessions(api: Client, out: Output, q: { agent?: string; status?: string; batch?: string; limit?: string }): Promise<void> {
  const params = new URLSearchParams();
  if (q.agent) params.set('agentId', q.agent);
  if (q.status) params.set('status', q.status);
  if (q.batch) params.set('batchId', q.batch);
  if (q.limit) params.set('limit', q.limit);
  const page = await api.call<{ items: { sessionId: string; agentId: string; status: string; roomName: string }[]; nextCursor: string | null }>('GET', `/api/sessions?${params}`);
  out.result(page, () => (page.items.length ? page.items.map((s) => `${s.sessionId}\t${s.agentId}\t${s.status}\t${s.roomName}`).join('\n') : 'no sessions'));
}

export async function cancelSession(api: Client, out: Output, id: string): Promise<void> {
  const s = await api.call<{ sessionId: string; status: string }>('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
  out.result(s, () => `session ${s.sessionId} ${s.status}`);
}
