import os from 'node:os';
import type { AgentServer } from '@livekit/agents';
import type { Logger } from '../common/logger.js';
import { HEARTBEAT_INTERVAL_MS, type WorkerCapacity, type WorkerInfo } from '../common/workers/capacity.js';
import type { Provider } from '../common/workers/providers.js';
import type { CpuGuard } from './cpu-guard.js';
import type { Sizing } from './sizing.js';

/** An accepted job that never shows up as running (its assignment was lost) stops counting after this. */
const ACCEPT_GRACE_MS = 10_000;

/**
 * This worker's load, counted in jobs, and its heartbeat. The agent server
 * runs each job in a process of its own; this counts the jobs accepted and
 * not yet started, plus the running ones whose session has not ended, against
 * the worker's slots, and tells Redis at once when that changes (and every
 * HEARTBEAT_INTERVAL_MS). Dispatchers dispatch only into the slots it reports.
 */
export class WorkerPresence {
  private server: AgentServer | undefined;
  private readonly accepted = new Map<string, number>();
  /** The session of each job this worker claimed, until the job is gone. */
  private readonly sessions = new Map<string, { sessionId: string; running: boolean }>();
  private readonly ended = new Set<string>();
  /** Job processes that finished their prewarm and have no job yet, by pid. */
  private readonly warm = new Set<number>();
  private everWarm = false;
  private markTakingJobs!: () => void;
  /** Resolves once a job process is warm: from then on this worker takes jobs. */
  readonly takingJobs = new Promise<void>((resolve) => (this.markTakingJobs = resolve));
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  private again = false;
  private lastError = 0;

  constructor(
    readonly id: string,
    private readonly o: { capacity: WorkerCapacity; sizing: Sizing; guard: CpuGuard; log: Logger; providers?: Provider[] },
  ) {}

  /** Starts beating once the agent server is registered with LiveKit. */
  start(server: AgentServer): void {
    this.server = server;
    this.timer = setInterval(() => this.changed(), HEARTBEAT_INTERVAL_MS);
    this.changed();
  }

  private running(): string[] {
    return (this.server?.activeJobs ?? []).map((j) => j.job.id);
  }

  /** Jobs holding a slot: running and not ended, or accepted and not running yet. */
  get busy(): number {
    const now = Date.now();
    const running = new Set(this.running());
    for (const [id, at] of this.accepted) if (running.has(id) || now - at > ACCEPT_GRACE_MS) this.accepted.delete(id);
    for (const id of this.ended) if (!running.has(id)) this.ended.delete(id);
    let busy = this.accepted.size;
    for (const id of running) if (!this.ended.has(id)) busy++;
    return busy;
  }

  /**
   * Slots free for new jobs. None until a job process is warm (a job sent
   * before would wait for a process start), while draining, and while the
   * CPU guard holds.
   */
  get free(): number {
    if (!this.server || !this.everWarm || this.draining || this.o.guard.on) return 0;
    return Math.max(0, this.o.sizing.capacity - this.busy);
  }

  info(): WorkerInfo {
    const busy = this.busy;
    return {
      capacity: this.o.sizing.capacity,
      busy,
      free: this.free,
      warm: this.warmProcesses,
      idle: this.o.sizing.idleProcesses,
      cpu: Math.round(this.o.guard.average * 1000) / 1000,
      guard: this.o.guard.on,
      draining: this.draining,
      ready: this.everWarm && !this.draining,
      host: os.hostname(),
      pid: process.pid,
      ...(this.o.providers ? { providers: this.o.providers } : {}),
    };
  }

  /** A job is accepted: it holds a slot from now on. */
  hold(jobId: string): void {
    this.accepted.set(jobId, Date.now());
  }

  /** The job claimed a session: the worker holds it (for recovery, should the worker die) while the job runs. */
  holdSession(jobId: string, sessionId: string): void {
    this.sessions.set(jobId, { sessionId, running: false });
  }

  /** Sessions whose jobs are gone from this worker: they no longer need recovering from it. */
  private async releaseFinished(): Promise<void> {
    const running = new Set(this.running());
    const done: string[] = [];
    for (const [jobId, s] of this.sessions) {
      if (running.has(jobId)) s.running = true;
      else if (s.running || !this.accepted.has(jobId)) {
        done.push(s.sessionId);
        this.sessions.delete(jobId);
      }
    }
    if (done.length) await this.o.capacity.release(this.id, done);
  }

  /** An accepted job was given up before it started. */
  unhold(jobId: string): void {
    this.accepted.delete(jobId);
    this.sessions.delete(jobId);
    this.changed();
  }

  /** Events from the job processes (through the worker's loopback sink). */
  onJobEvent(e: { type: string; jobId?: string; pid?: number }): void {
    if (e.type === 'warm' && e.pid) {
      this.warm.add(e.pid);
      if (!this.everWarm) {
        this.everWarm = true;
        this.o.log.info('a job process is warm: taking jobs');
        this.markTakingJobs();
      }
    } else if (e.type === 'received' && e.pid) this.warm.delete(e.pid);
    else if (e.type === 'ended' && e.jobId) this.ended.add(e.jobId);
    else return;
    this.changed();
  }

  /** Warm job processes still alive (one that exited without a job no longer counts). */
  get warmProcesses(): number {
    for (const pid of this.warm) {
      try {
        process.kill(pid, 0);
      } catch {
        this.warm.delete(pid);
      }
    }
    return this.warm.size;
  }

  /** Beats now (coalescing beats asked for while one is on its way). */
  changed(): void {
    if (!this.server) return;
    if (this.beating) {
      this.again = true;
      return;
    }
    this.beating = this.o.capacity
      .heartbeat(this.id, this.info(), [...this.sessions.values()].filter((s) => s.running).map((s) => s.sessionId))
      .then(() => this.releaseFinished())
      .catch((err: Error) => {
        // Redis away: the worker's slots stop counting until it is back, which is what should happen.
        if (Date.now() - this.lastError > 10_000) this.o.log.warn({ err: err.message }, 'heartbeat not written');
        this.lastError = Date.now();
      })
      .finally(() => {
        this.beating = undefined;
        if (this.again) {
          this.again = false;
          this.changed();
        }
      });
  }

  /** Takes no new jobs from now on (the running ones finish). */
  drain(): void {
    this.draining = true;
    this.changed();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    this.server = undefined;
    // Unwritten, the heartbeat lapses in 2 s and the dispatchers drop this worker then.
    await this.o.capacity.leave(this.id).catch((err: Error) => this.o.log.warn({ err: err.message }, 'worker not removed from capacity'));
  }
}
