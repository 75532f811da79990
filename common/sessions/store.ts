import type { SessionDoc, SessionModels } from './model.js';
import type { SessionJob, SessionStatus } from './schema.js';
import { ENTERED_FROM } from './state.js';

export interface TransitionFields {
  configVersion?: number;
  dispatchId?: string;
  failureReason?: string;
}

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
    attempts: 0,
    requestedAt,
  };
}

export function queuedRecord(job: SessionJob): SessionDoc {
  const base = recordFromJob(job);
  return { ...base, status: 'queued', transitions: [{ status: 'queued', at: base.requestedAt }], updatedAt: base.requestedAt };
}

/** Session records in MongoDB, changed only along the state machine. */
export class SessionStore {
  constructor(readonly models: SessionModels) {}

  get(sessionId: string) {
    return this.models.Session.findById(sessionId).lean();
  }

  /**
   * Moves a session to `to` if its current status allows it. When the record
   * does not exist yet (the API writes it behind the queue), it is created from
   * `job` already in `to`. Returns whether the transition happened.
   */
  async transition(sessionId: string, to: SessionStatus, fields: TransitionFields = {}, job?: SessionJob): Promise<boolean> {
    const now = new Date();
    const update = {
      $set: { status: to, updatedAt: now, ...fields },
      $push: { transitions: { status: to, at: now } },
      ...(to === 'dispatching' ? { $inc: { attempts: 1 } } : {}),
    };
    const res = await this.models.Session.updateOne({ _id: sessionId, status: { $in: [...ENTERED_FROM[to]] } }, update);
    if (res.matchedCount > 0) return true;
    if (!job || !ENTERED_FROM[to].includes('queued')) return false;
    const base = recordFromJob(job);
    try {
      await this.models.Session.create({
        ...base,
        ...fields,
        status: to,
        attempts: to === 'dispatching' ? 1 : 0,
        transitions: [
          { status: 'queued', at: base.requestedAt },
          { status: to, at: now },
        ],
        updatedAt: now,
      });
      return true;
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // Written meanwhile (by the API's writer or another process): try the guarded update once more.
      const again = await this.models.Session.updateOne({ _id: sessionId, status: { $in: [...ENTERED_FROM[to]] } }, update);
      return again.matchedCount > 0;
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
