import type { Logger } from '../../common/logger.js';
import type { SessionDoc } from '../../common/sessions/model.js';
import type { SessionStore } from '../../common/sessions/store.js';

/**
 * Writes queued session records to MongoDB behind the queue, in batches, so
 * the request path waits only for Redis. Losing a batch (a crash, an outage)
 * loses nothing: the dispatcher writes the record from the job when it runs.
 */
export class RecordWriter {
  private buffer: SessionDoc[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: SessionStore,
    private readonly log: Logger,
    private readonly delayMs = 20,
    private readonly maxBatch = 1000,
  ) {}

  add(docs: SessionDoc[]): void {
    this.buffer.push(...docs);
    if (this.buffer.length >= this.maxBatch) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Writes what is buffered; resolves when every earlier write is done. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const docs = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      for (let i = 0; i < docs.length; i += this.maxBatch) {
        const chunk = docs.slice(i, i + this.maxBatch);
        try {
          await this.store.insertQueued(chunk);
        } catch (err) {
          this.log.warn({ count: chunk.length, err: (err as Error).message }, 'queued session records not written; the dispatcher will write them');
        }
      }
    });
    return this.flushing;
  }
}
