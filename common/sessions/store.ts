import { BusyError } from '../errors.js';
import type { SessionDoc, SessionModels } from './model.js';
import type { SessionJob, SessionStatus } from './schema.js';
import { ENTERED_FROM } from './state.js';

export interface TransitionFields {
  configVersion?: number;
  /** Dispatch attempts made so far, this one included. */
  attempts?: number;
  dispatchId?: string;
  failureReason?: string;
  redispatches?: number;
  endedAt?: Date;
  durationSeconds?: number;
}

/** Told of every status change that happened, after it is written. */
export type TransitionListener = (session: SessionDoc, from: SessionStatus | undefined) => void | Promise<void>;

const isDuplicateKey = (err: unknown) => (err as { code?: number })?.code === 11000;

/** The base record of a session, as the API knows it when it queues the job. */
export function recordFromJob(job: SessionJob): Omit<SessionDoc, 'status' | 'transitions' | 'updatedAt'> {
  const requestedAt = new Date(job.requestedAt);
  return {
    _id: job.sessionId,
    agentId: job.agentId,
    roomName: job.roomName,
    participantIdentity: job.participantIdentity,
    ...(job.metadata ? { metadata: job.metadata } : {}),
    ...(job.batchId ? { batchId: job.batchId } : {}),
    ...(job.scheduledAt ? { scheduledAt: new Date(job.scheduledAt) } : {}),
    ...(job.callbackUrl ? { callbackUrl: job.callbackUrl } : {}),
    attempts: 0,
    requestedAt,
  };
}

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
    generation,
  };
}

export function queuedRecord(job: SessionJob): SessionDoc {
  const base = recordFromJob(job);
  return { ...base, status: 'queued', transitions: [{ status: 'queued', at: base.requestedAt }], updatedAt: base.requestedAt };
}

/** Exclusive right to change one session's record; undefined when not obtained in time. */
export type SessionLock = (sessionId: string) => Promise<(() => Promise<void>) | undefined>;

/**
 * Session records in MongoDB, changed only along the state machine.
 *
 * Each transition reads the record, checks the move, and writes by `_id`
 * alone, under a short per-session Redis lock. A filter on `_id` plus status
 * would do the same in one MongoDB round trip, but the MongoDB-compatible
 * server used in development scans the whole collection for any filter that
 * is not a bare `_id`; the lock keeps every transition an indexed write on both.
 */
export class SessionStore {
  private readonly listeners: TransitionListener[] = [];

  constructor(
    readonly models: SessionModels,
    private readonly lock: SessionLock,
  ) {}

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  private async notify(doc: SessionDoc, from: SessionStatus | undefined): Promise<void> {
    for (const l of this.listeners) await l(doc, from);
  }

  get(sessionId: string) {
    return this.models.Session.findById(sessionId).lean();
  }

  /** The session's status alone; undefined while its record is not written yet. */
  async status(sessionId: string): Promise<SessionStatus | undefined> {
    return (await this.models.Session.findById(sessionId, { status: 1 }).lean())?.status;
  }

  /**
   * Moves a session to `to` if its current status allows it. When the record
   * does not exist yet (the API writes it behind the queue), it is created from
   * `job` already in `to`. Returns whether the transition happened.
   */
  async transition(sessionId: string, to: SessionStatus, fields: TransitionFields = {}, job?: SessionJob): Promise<boolean> {
    const moved = await this.move(sessionId, to, fields, job);
    if (moved.doc) await this.notify(moved.doc, moved.from);
    return moved.doc !== undefined;
  }

  private async move(
    sessionId: string,
    to: SessionStatus,
    fields: TransitionFields,
    job?: SessionJob,
  ): Promise<{ doc?: SessionDoc; from?: SessionStatus }> {
    const release = await this.lock(sessionId);
    if (!release) throw new BusyError(`session ${sessionId} is being changed by another request; retry shortly`);
    try {
      const now = new Date();
      const cur = await this.models.Session.findById(sessionId).lean();
      if (cur) {
        if (!ENTERED_FROM[to].includes(cur.status)) return {};
        const set = { status: to, updatedAt: now, ...fields };
        const transition = { status: to, at: now };
        await this.models.Session.updateOne({ _id: sessionId }, { $set: set, $push: { transitions: transition } });
        // The record as written, without reading it back: listeners see what this move made.
        return { doc: { ...cur, ...set, transitions: [...(cur.transitions ?? []), transition] }, from: cur.status };
      }
      // Not written yet (the API writes records behind the queue): create it already in `to`.
      if (!job || !ENTERED_FROM[to].includes('queued')) return {};
      const base = recordFromJob(job);
      const doc: SessionDoc = {
        ...base,
        ...fields,
        status: to,
        transitions: [
          { status: 'queued', at: base.requestedAt },
          { status: to, at: now },
        ],
        updatedAt: now,
      };
      try {
        await this.models.Session.create(doc);
        return { doc, from: 'queued' };
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
    } finally {
      await release();
    }
    // The queued record landed meanwhile: apply the move to it.
    return this.move(sessionId, to, fields);
  }

  /** Changes fields (not the status) of a session that is still in `expected`. */
  async update(sessionId: string, expected: SessionStatus, fields: TransitionFields): Promise<boolean> {
    const release = await this.lock(sessionId);
    if (!release) throw new BusyError(`session ${sessionId} is being changed by another request; retry shortly`);
    try {
      const cur = await this.models.Session.findById(sessionId, { status: 1 }).lean();
      if (cur?.status !== expected) return false;
      await this.models.Session.updateOne({ _id: sessionId }, { $set: { ...fields, updatedAt: new Date() } });
      return true;
    } finally {
      await release();
    }
  }

  /** Inserts queued records, skipping any that a dispatcher already wrote. */
  async insertQueued(docs: SessionDoc[]): Promise<void> {
    if (docs.length === 0) return;
    try {
      await this.models.Session.insertMany(docs, { ordered: false, lean: true });
    } catch (err) {
      const writeErrors = (err as { writeErrors?: { code?: number; err?: { code?: number } }[] }).writeErrors;
      if (!writeErrors || !writeErrors.every((e) => (e.code ?? e.err?.code) === 11000)) throw err;
    }
  }
}
