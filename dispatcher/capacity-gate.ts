import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import type { WorkerCapacity } from '../common/workers/capacity.js';

/** Looks again this often even without a message: a reservation lapsed, a message was missed. */
const POLL_MS = 500;
/** Waiting marks are refreshed this often (readers drop marks older than 10 s). */
const MARK_MS = 2000;

export class GateClosedError extends Error {
  constructor() {
    super('the dispatcher is stopping');
  }
}

interface Waiter {
  sessionId: string;
  since: number;
  resolve(waitedMs: number): void;
  reject(err: Error): void;
}

/**
 * Holds session dispatches back until a worker has a free slot, in the order
 * they came. A slot is reserved in Redis (common/workers/capacity.ts) before
 * each dispatch; while none is free the sessions wait here, marked as waiting
 * for capacity, and the first of them goes the moment a worker reports a
 * slot free (its heartbeat publishes the rise).
 */
export class CapacityGate {
  private readonly waiters: Waiter[] = [];
  private trying: Promise<void> | undefined;
  private again = false;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(
    private readonly capacity: WorkerCapacity,
    private readonly subscriber: Redis,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', () => this.wake());
    await this.subscriber.subscribe(this.capacity.keys.channel);
    this.timers.push(setInterval(() => this.wake(), POLL_MS));
    this.timers.push(
      setInterval(() => {
        void this.capacity.markWaiting(this.waiters.map((w) => w.sessionId)).catch((err: Error) => this.notMarked(err));
      }, MARK_MS),
    );
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves with the milliseconds waited once a slot is reserved for the session. */
  async acquire(sessionId: string): Promise<number> {
    if (this.closed) throw new GateClosedError();
    // Nobody ahead and a slot free: no wait.
    if (this.waiters.length === 0 && (await this.capacity.reserve(sessionId))) return 0;
    const waited = new Promise<number>((resolve, reject) => this.waiters.push({ sessionId, since: Date.now(), resolve, reject }));
    await this.capacity.markWaiting([sessionId]).catch((err: Error) => this.notMarked(err));
    this.wake();
    return waited;
  }

  /**
   * Gives back a reserved slot that will not be used (the session moved on meanwhile). Never
   * throws: a reservation not given back lapses by itself, so a failure is only logged.
   */
  async release(sessionId: string): Promise<void> {
    await this.capacity.unreserve(sessionId).catch((err: Error) => this.log.warn({ sessionId, err: err.message }, 'worker slot reservation not given back'));
  }

  /** Waiting marks only feed the waiting-for-capacity gauge (marks expire), so a failed write is logged and the wait goes on. */
  private notMarked(err: Error): void {
    this.log.debug({ err: err.message }, 'waiting for capacity not marked');
  }

  private wake(): void {
    if (this.trying) {
      this.again = true;
      return;
    }
    this.trying = this.serve()
      .catch((err: Error) => this.log.debug({ err: err.message }, 'capacity not read'))
      .finally(() => {
        this.trying = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Reserves slots for the waiters in order, as long as there are free ones. */
  private async serve(): Promise<void> {
    while (this.waiters.length > 0) {
      const head = this.waiters[0]!;
      if (!(await this.capacity.reserve(head.sessionId))) return;
      this.waiters.shift();
      await this.capacity.unmarkWaiting(head.sessionId).catch((err: Error) => this.notMarked(err));
      head.resolve(Date.now() - head.since);
    }
  }

  /** Stops: every waiter is told, so its job can go back to the queue in its place. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const w of this.waiters.splice(0)) {
      await this.capacity.unmarkWaiting(w.sessionId).catch((err: Error) => this.notMarked(err));
      w.reject(new GateClosedError());
    }
    this.subscriber.disconnect();
  }
}
