import type { Logger } from '../common/logger.js';
import { type Placements, type SessionJob, type SessionStore, TERMINAL_STATUSES, type TransitionFields } from '../common/sessions/index.js';

/** What an automatically dispatched job's session is recorded with when its agent starts. */
export interface AutomaticStart {
  agentId: string;
  roomName: string;
  /** When LiveKit offered the job: the session's request time. */
  requestedAt: Date;
}

/**
 * The session record as one job keeps it: failed when the job cannot serve
 * it, active once the agent speaks, ended when it is over. Only the job that
 * serves the session now writes (not one placed again meanwhile). A write
 * that fails is logged, never thrown: the agent keeps talking, and the
 * dispatcher's checks put the record right.
 *
 * An automatically dispatched job (`automatic`) has no request behind it: its
 * session is recorded when the agent starts (source "automatic"), and only
 * this job ever serves it.
 */
export class JobSessionRecord {
  constructor(
    private readonly sessionId: string | undefined,
    private readonly jobId: string,
    private readonly d: { store: SessionStore; placements: Placements },
    private readonly log: Logger,
    private readonly automatic?: AutomaticStart,
  ) {}

  /** Tells the dispatcher's join check that a process is starting this job. */
  started(): void {
    if (this.sessionId && !this.automatic) {
      // Unwritten, the join check times this job from its acceptance instead; the job goes on either way.
      void this.d.placements.started(this.sessionId, this.jobId).catch((err: Error) => this.log.warn({ err: err.message }, 'job start not recorded'));
    }
  }

  /**
   * Whether this job has nothing left to serve: its session is over (cancelled,
   * or ended while the job was starting) or another job serves it now. When
   * the record cannot be read, the job goes on.
   */
  async over(): Promise<boolean> {
    if (!this.sessionId || this.automatic) return false;
    try {
      const s = await this.d.store.get(this.sessionId);
      if (s && TERMINAL_STATUSES.includes(s.status)) return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'session record not read: going on');
      return false;
    }
    return !(await this.serving());
  }

  private async serving(): Promise<boolean> {
    return !this.sessionId || !!this.automatic || (await this.d.placements.isCurrent(this.sessionId, this.jobId).catch(() => true));
  }

  private async write(fn: (sessionId: string) => Promise<unknown>): Promise<void> {
    if (!this.sessionId) return;
    try {
      await fn(this.sessionId);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'session record not updated');
    }
  }

  failed(reason: string): Promise<void> {
    return this.write((id) => this.d.store.transition(id, 'failed', { failureReason: reason }));
  }

  /**
   * The agent is in the room and its session started; `dispatchId` is the dispatch it serves.
   * `user` and `configVersion` name who the agent serves and what it runs, for an automatic session's record.
   */
  async active(dispatchId: string | undefined, start: { user?: string; configVersion?: number } = {}): Promise<void> {
    if (this.automatic) {
      const a = this.automatic;
      const job: SessionJob = {
        sessionId: this.sessionId!,
        agentId: a.agentId,
        roomName: a.roomName,
        participantIdentity: start.user || 'unknown',
        requestedAt: a.requestedAt.toISOString(),
        source: 'automatic',
      };
      const fields: TransitionFields = { ...(dispatchId ? { dispatchId } : {}), ...(start.configVersion !== undefined ? { configVersion: start.configVersion } : {}) };
      return this.write((id) => this.d.store.transition(id, 'active', fields, job));
    }
    if (!(await this.serving())) return;
    await this.write(async (id) => {
      // The dispatcher made the dispatch with the room and never saw its id; LiveKit's webhook may have recorded it active first.
      if (!(await this.d.store.transition(id, 'active', dispatchId ? { dispatchId } : {})) && dispatchId) await this.d.store.update(id, 'active', { dispatchId });
    });
  }

  async ended(fields: TransitionFields): Promise<void> {
    if (!(await this.serving())) return;
    await this.write((id) => this.d.store.transition(id, 'ended', fields));
  }
}
