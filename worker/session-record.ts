import type { Logger } from '../common/logger.js';
import type { Placements, SessionStore, TransitionFields } from '../common/sessions/index.js';

/**
 * The session record as one job keeps it: failed when the job cannot serve
 * it, active once the agent speaks, ended when it is over. Only the job that
 * serves the session now writes (not one placed again meanwhile). A write
 * that fails is logged, never thrown: the agent keeps talking, and the
 * dispatcher's checks put the record right.
 */
export class JobSessionRecord {
  constructor(
    private readonly sessionId: string | undefined,
    private readonly jobId: string,
    private readonly d: { store: SessionStore; placements: Placements },
    private readonly log: Logger,
  ) {}

  /** Tells the dispatcher's join check that a process is starting this job. */
  started(): void {
    if (this.sessionId) void this.d.placements.started(this.sessionId, this.jobId).catch(() => undefined);
  }

  private async serving(): Promise<boolean> {
    return !this.sessionId || (await this.d.placements.isCurrent(this.sessionId, this.jobId).catch(() => true));
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

  /** The agent is in the room and its session started; `dispatchId` is the dispatch it serves. */
  async active(dispatchId: string | undefined): Promise<void> {
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
