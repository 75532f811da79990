import { setTimeout as sleep } from 'node:timers/promises';
import type { HistoryWriter } from './history-writer.js';
import type { HotRecords, TransitionFields } from './hot-records.js';
import type { BatchDoc, SessionDoc, SessionModels } from './model.js';
import { SESSION_STATUSES, type SessionJob, type SessionSource, type SessionStatus } from './schema.js';
import { DISPATCHED_STATUSES } from './state.js';

export type { TransitionFields };

/** Told of every status change that happened, after it is written. */
export type TransitionListener = (session: SessionDoc, from: SessionStatus | undefined) => void | Promise<void>;

/** What a move to `ended` records: when, and how long the agent was active (0 if it never was). */
export function endedFields(s: SessionDoc, reason?: string, endedAt = new Date()): TransitionFields {
  const activeAt = s.transitions.find((t) => t.status === 'active')?.at;
  return {
    endedAt,
    durationSeconds: activeAt ? Math.round((endedAt.getTime() - new Date(activeAt).getTime()) / 100) / 10 : 0,
    ...(reason ? { failureReason: reason } : {}),
  };
}

/** The job that dispatches a recorded session again. */
export function jobFromRecord(s: SessionDoc, generation: number): SessionJob {
  return {
    sessionId: s._id,
    agentId: s.agentId,
    roomName: s.roomName,
    participantIdentity: s.participantIdentity,
    ...(s.metadata ? { metadata: s.metadata } : {}),
    ...(s.batchId ? { batchId: s.batchId } : {}),
    ...(s.callbackUrl ? { callbackUrl: s.callbackUrl } : {}),
    requestedAt: new Date(s.requestedAt).toISOString(),
    // The agent placed again (or replacing a dead one) runs the version its session started with.
    ...(s.configVersion !== undefined ? { configVersion: s.configVersion } : {}),
    generation,
  };
}

/** The record of a session that is still only in its job: queued. */
export function queuedRecord(job: SessionJob): SessionDoc {
  const requestedAt = new Date(job.requestedAt);
  return {
    _id: job.sessionId,
    agentId: job.agentId,
    roomName: job.roomName,
    participantIdentity: job.participantIdentity,
    ...(job.metadata ? { metadata: job.metadata } : {}),
    ...(job.batchId ? { batchId: job.batchId } : {}),
    ...(job.source ? { source: job.source } : {}),
    ...(job.scheduledAt ? { scheduledAt: new Date(job.scheduledAt) } : {}),
    ...(job.callbackUrl ? { callbackUrl: job.callbackUrl } : {}),
    ...(job.configVersion !== undefined ? { configVersion: job.configVersion } : {}),
    attempts: 0,
    requestedAt,
    status: 'queued',
    transitions: [{ status: 'queued', at: requestedAt }],
    updatedAt: requestedAt,
  };
}

export interface SessionListQuery {
  agentId?: string;
  status?: SessionStatus;
  batchId?: string;
  source?: SessionSource;
  limit: number;
  cursor?: string;
}

export type StatusCounts = Record<SessionStatus, number>;

const zeroCounts = () => Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as StatusCounts;

/**
 * Session records. A running session lives in Redis (hot-records.ts): every
 * move is one atomic script checked against the state table, so the hot
 * path never waits on MongoDB. MongoDB keeps the history, written behind in
 * bulk (history-writer.ts). Reads of one session come from Redis, falling
 * back to MongoDB for sessions long over; listings and counts read MongoDB
 * once every change made before the request is written there (normally
 * within a writer interval; bounded by `historyWaitMs`).
 */
export class SessionStore {
  private readonly listeners: TransitionListener[] = [];
  private writer: HistoryWriter | undefined;

  constructor(
    private readonly hot: HotRecords,
    private readonly models: SessionModels,
    private readonly historyWaitMs = 2000,
  ) {}

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  /** The history writer of this process, asked to hurry when a read waits for it. */
  useWriter(writer: HistoryWriter): void {
    this.writer = writer;
  }

  async get(sessionId: string): Promise<SessionDoc | undefined> {
    return (await this.hot.get(sessionId)) ?? (await this.models.Session.findById(sessionId).lean()) ?? undefined;
  }

  /** The session's status alone; undefined while it has no record yet. */
  async status(sessionId: string): Promise<SessionStatus | undefined> {
    return (await this.hot.status(sessionId)) ?? (await this.models.Session.findById(sessionId, { status: 1 }).lean())?.status;
  }

  /** Records sessions just queued (their jobs are in the queue already). */
  createQueued(jobs: SessionJob[]): Promise<void> {
    return this.hot.createQueued(jobs);
  }

  /**
   * Moves a session to `to` if its current status allows it. A session not
   * recorded yet (its API records it just after queueing it) is recorded from
   * `job` first. Returns whether the move happened.
   */
  async transition(sessionId: string, to: SessionStatus, fields: TransitionFields = {}, job?: SessionJob): Promise<boolean> {
    const moved = await this.hot.move(sessionId, to, fields, job);
    if (!moved) return false;
    for (const l of this.listeners) await l(moved.doc, moved.from);
    return true;
  }

  /** Changes fields (not the status) of a session that is still in `expected`. */
  update(sessionId: string, expected: SessionStatus, fields: TransitionFields): Promise<boolean> {
    return this.hot.update(sessionId, expected, fields);
  }

  /** The sessions of a room that are not over (oldest first). */
  openInRoom(room: string) {
    return this.hot.openInRoom(room);
  }

  /** How far the history is behind: age of the oldest unwritten change (ms) and sessions waiting. */
  historyLag() {
    return this.hot.lag();
  }

  /** Waits until MongoDB holds every change made before now, at most `historyWaitMs`; false if it still does not. */
  async historyCaughtUp(at = Date.now()): Promise<boolean> {
    const deadline = Date.now() + this.historyWaitMs;
    for (;;) {
      if (await this.hot.writtenUpTo(at)) return true;
      if (Date.now() > deadline) return false;
      this.writer?.poke();
      await sleep(10);
    }
  }

  async list(q: SessionListQuery): Promise<{ items: SessionDoc[]; nextCursor: string | null }> {
    await this.historyCaughtUp();
    const filter: Record<string, unknown> = {};
    if (q.agentId) filter.agentId = q.agentId;
    if (q.status) filter.status = q.status;
    if (q.batchId) filter.batchId = q.batchId;
    // Records of API sessions carry no source.
    if (q.source) filter.source = q.source === 'api' ? { $exists: false } : q.source;
    if (q.cursor) filter._id = { $lt: q.cursor };
    const docs = await this.models.Session.find(filter).sort({ _id: -1 }).limit(q.limit + 1).lean();
    const items = docs.slice(0, q.limit);
    return { items, nextCursor: docs.length > q.limit ? items[items.length - 1]!._id : null };
  }

  private async counts(match: Record<string, unknown>): Promise<StatusCounts> {
    const groups = await this.models.Session.aggregate<{ _id: SessionStatus; n: number }>([{ $match: match }, { $group: { _id: '$status', n: { $sum: 1 } } }]);
    const counts = zeroCounts();
    for (const g of groups) if (g._id in counts) counts[g._id] = g.n;
    return counts;
  }

  /** Sessions by status, over the whole history. */
  async statusCounts(): Promise<StatusCounts> {
    await this.historyCaughtUp();
    return this.counts({});
  }

  /** Active sessions per agent. */
  async activeByAgent(): Promise<Record<string, number>> {
    await this.historyCaughtUp();
    const groups = await this.models.Session.aggregate<{ _id: string; n: number }>([{ $match: { status: 'active' } }, { $group: { _id: '$agentId', n: { $sum: 1 } } }]);
    return Object.fromEntries(groups.map((g) => [g._id, g.n]));
  }

  /** Seconds from request to dispatch of the latest `sample` sessions that got that far, ascending. */
  async dispatchLatencies(sample: number): Promise<number[]> {
    await this.historyCaughtUp();
    const recent = await this.models.Session.find({ status: { $in: [...DISPATCHED_STATUSES] } }, { requestedAt: 1, transitions: 1 })
      .sort({ _id: -1 })
      .limit(sample)
      .lean();
    return recent
      .map((s) => {
        const at = s.transitions?.find((t) => t.status === 'dispatched')?.at;
        return at ? (new Date(at).getTime() - new Date(s.requestedAt).getTime()) / 1000 : undefined;
      })
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
  }

  createBatch(batch: BatchDoc): Promise<unknown> {
    return this.models.Batch.create(batch);
  }

  deleteBatch(batchId: string): Promise<unknown> {
    return this.models.Batch.deleteOne({ _id: batchId });
  }

  /** A batch; its session ids only when asked for (up to 10,000 of them). */
  async batch(batchId: string, withSessions = false): Promise<BatchDoc | undefined> {
    return (await this.models.Batch.findById(batchId, withSessions ? {} : { sessionIds: 0 }).lean()) ?? undefined;
  }

  /** A batch's sessions by status; sessions not recorded yet count as queued. */
  async batchCounts(batch: Pick<BatchDoc, '_id' | 'accepted'>): Promise<StatusCounts> {
    await this.historyCaughtUp();
    const counts = await this.counts({ batchId: batch._id });
    const recorded = Object.values(counts).reduce((a, b) => a + b, 0);
    counts.queued += Math.max(0, batch.accepted - recorded);
    return counts;
  }
}
