import type { Redis } from 'ioredis';

/** An event older than this (by its `createdAt`) is refused: its id may be forgotten by now. */
export const WEBHOOK_MAX_AGE_SECONDS = 600;
/** How far ahead of this host's clock an event may claim to have been made (clock skew). */
export const WEBHOOK_MAX_SKEW_SECONDS = 60;
/**
 * How long an event id is remembered: longer than any event is accepted
 * (its age window plus the skew allowed on both sides), so no accepted event
 * can be accepted a second time.
 */
export const WEBHOOK_ID_TTL_SECONDS = 900;

export type WebhookFreshness = 'fresh' | 'duplicate' | 'stale' | 'undated';

/**
 * LiveKit's webhook signature covers the body, not its delivery: a captured
 * request stays valid for as long as its token does. Each event carries an
 * `id` and a `createdAt` (seconds); an id seen before is a replay (or
 * LiveKit's own retry of a delivery that did succeed), an event outside the
 * time window is refused, so nothing older than the ids remembered can come in.
 * Ids live in Redis beside the queue (same prefix), shared by every replica.
 */
export class WebhookReplays {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {}

  private key(id: string) {
    return `${this.prefix}:webhook:${id}`;
  }

  /** Claims the event: `fresh` once per id (within the window), else why not. */
  async claim(e: { id?: string; createdAt?: bigint | number }): Promise<WebhookFreshness> {
    const createdAt = Number(e.createdAt ?? 0);
    if (!e.id || !createdAt) return 'undated';
    const age = this.now() / 1000 - createdAt;
    if (age > WEBHOOK_MAX_AGE_SECONDS || age < -WEBHOOK_MAX_SKEW_SECONDS) return 'stale';
    const set = await this.redis.set(this.key(e.id), '1', 'EX', WEBHOOK_ID_TTL_SECONDS, 'NX');
    return set === 'OK' ? 'fresh' : 'duplicate';
  }

  /** Forgets a claimed id whose event could not be applied, so LiveKit's retry of it is applied. */
  async release(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}
