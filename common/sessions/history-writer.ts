import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import type { mongo } from 'mongoose';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { isDuplicateKey } from '../mongo.js';
import { luaScript } from '../redis.js';
import type { HotRecords, UnwrittenRecord } from './hot-records.js';
import type { SessionDoc, SessionModels } from './model.js';

// Holds or takes the writer's lease: one history writer at a time, another takes over within the lease if it dies.
const LEASE = luaScript(
  `local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not cur then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
return 0`,
  1,
);

const RELEASE = luaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, 1);

/**
 * Replacements per update command. FerretDB v1 (the embedded store) holds one
 * of its 100 SQLite connections per update in a command until the command
 * ends, so a command of 100 updates, or two of 60 at once, wait forever; a
 * real MongoDB only pays a round trip per command.
 */
const UPDATES_PER_COMMAND = 25;

export interface HistoryWriterOptions {
  /** How often the writer looks for changes when idle. */
  intervalMs?: number;
  /** Sessions per bulk write. */
  batch?: number;
  /** How long a session's record stays in Redis once it is over and written. */
  hotTtlMs: number;
  /** Told of every flush: sessions written and how long it took. */
  onFlush?(sessions: number, seconds: number): void;
}

/**
 * Writes running sessions' changes from Redis to MongoDB behind the hot
 * path, in bulk: every process that can write (API, dispatcher) runs one,
 * and a lease in Redis lets one at a time do it. A record is marked written
 * only at the version that reached MongoDB, so a change made during a write
 * is written next time; a session that is over expires from Redis only after
 * its final state is in MongoDB. While MongoDB is away nothing is lost:
 * changes stay marked in Redis and are written when it is back.
 */
export class HistoryWriter {
  private readonly me = randomBytes(8).toString('hex');
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly leaseKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly records: HotRecords,
    private readonly models: SessionModels,
    private readonly log: Logger,
    private readonly o: HistoryWriterOptions,
  ) {
    this.leaseKey = `${records.keys.prefix}:history-writer`;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Asks for a write now instead of at the next interval. */
  poke(): void {
    this.wake?.();
  }

  private async run(): Promise<void> {
    const interval = this.o.intervalMs ?? 50;
    let failures = 0;
    while (!this.stopped) {
      let written = 0;
      try {
        if ((await LEASE(this.redis, [this.leaseKey], [this.me, Math.max(2000, interval * 20)])) === 1) written = await this.flush();
        failures = 0;
      } catch (err) {
        failures++;
        // MongoDB or Redis away: the changes stay marked; try again, less often the longer it lasts.
        if (failures === 1 || failures % 50 === 0) this.log.warn({ err: (err as Error).message, failures }, 'session history not written yet; retrying');
      }
      if (written >= (this.o.batch ?? 1000)) continue;
      const wait = failures ? Math.min(1000, interval * 2 ** Math.min(failures, 5)) : interval;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Writes one bulk of unwritten changes; returns how many sessions it wrote. */
  async flush(): Promise<number> {
    const started = performance.now();
    const recs = await this.records.unwritten(this.o.batch ?? 1000);
    if (recs.length === 0) return 0;
    await this.write(recs);
    this.o.onFlush?.(recs.length, (performance.now() - started) / 1000);
    return recs.length;
  }

  /**
   * Writes these copies of sessions to MongoDB, then marks each written at
   * the version it holds. A copy older than the record (it changed, or this
   * writer lost its lease and another wrote a newer copy first) is marked
   * unwritten again, so the newest copy is written after this one.
   */
  async write(recs: UnwrittenRecord[]): Promise<void> {
    // Session ids are strings, where the driver's untyped collection expects ObjectIds.
    const asDoc = (d: SessionDoc) => d as unknown as mongo.Document;
    // By `_id` alone: the embedded store looks up nothing else without scanning the collection.
    const replace = (d: SessionDoc): mongo.AnyBulkWriteOperation => ({ replaceOne: { filter: { _id: d._id } as mongo.Document, replacement: asDoc(d), upsert: true } });
    // New sessions are inserted, all in one command (the cheap write); one already in MongoDB is replaced.
    const fresh = recs.flatMap((r, i) => (r.inHistory ? [] : [i]));
    const known = recs.flatMap((r, i) => (r.inHistory ? [i] : []));
    // A duplicate insert means another writer got there first: replaced like the others.
    const taken = (await this.bulk(fresh.map((i): mongo.AnyBulkWriteOperation => ({ insertOne: { document: asDoc(recs[i]!.doc) } })))).map((k) => fresh[k]!);
    const replaced = [...known, ...taken];
    for (let i = 0; i < replaced.length; i += UPDATES_PER_COMMAND) {
      const refused = await this.bulk(replaced.slice(i, i + UPDATES_PER_COMMAND).map((k) => replace(recs[k]!.doc)));
      if (refused.length) throw new Error(`${refused.length} session replacements refused as duplicates`);
    }
    await this.records.written(recs, this.o.hotTtlMs);
  }

  /** Runs a bulk write; returns the indexes of the operations refused as duplicates (any other failure throws). */
  private async bulk(ops: mongo.AnyBulkWriteOperation[]): Promise<number[]> {
    if (ops.length === 0) return [];
    try {
      await this.models.Session.collection.bulkWrite(ops, { ordered: false });
      return [];
    } catch (err) {
      const writeErrors = (err as { writeErrors?: { index: number; code?: number }[] }).writeErrors;
      if (!writeErrors?.length || !writeErrors.every((e) => isDuplicateKey(e))) throw err;
      return writeErrors.map((e) => e.index);
    }
  }

  /** Stops writing, after one last write of what is waiting (best effort: the next writer takes the rest). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    await this.loop;
    try {
      if ((await LEASE(this.redis, [this.leaseKey], [this.me, 5000])) === 1) {
        for (let i = 0; i < 20 && (await this.flush()) > 0; i++);
        await RELEASE(this.redis, [this.leaseKey], [this.me]);
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'last history write skipped');
    }
  }
}
