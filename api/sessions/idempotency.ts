import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConflictError, ValidationError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';

export interface StoredResponse {
  status: number;
  body: unknown;
}

type Slot = { hash: string; response?: StoredResponse };

/**
 * Idempotency-Key: the first request with a key claims it (SET NX) and stores
 * its response; a repeat with the same body gets that response back, one with
 * another body a 409. Keys are scoped to the API key that sent them.
 */
export class IdempotencyKeys {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly log?: Logger,
  ) {}

  static hashBody(body: unknown): string {
    return createHash('sha256').update(JSON.stringify(body ?? null)).digest('hex');
  }

  private key(scope: string, key: string) {
    return `${this.prefix}:idempotency:${scope}:${createHash('sha256').update(key).digest('hex')}`;
  }

  /**
   * Runs `fn` once per (scope, key). Returns the stored response for a
   * repeat. If `fn` throws, the key is released so the client can retry.
   */
  async run(scope: string, key: string, body: unknown, fn: () => Promise<StoredResponse>): Promise<StoredResponse & { replayed: boolean }> {
    if (key.length === 0 || key.length > 255) throw new ValidationError([{ field: 'Idempotency-Key', message: '1-255 characters' }]);
    const k = this.key(scope, key);
    const hash = IdempotencyKeys.hashBody(body);
    const claimed = await this.redis.set(k, JSON.stringify({ hash } satisfies Slot), 'EX', this.ttlSeconds, 'NX');
    if (claimed !== 'OK') {
      const slot = JSON.parse((await this.redis.get(k)) ?? '{}') as Partial<Slot>;
      if (slot.hash !== hash) throw new ConflictError('this Idempotency-Key was used with a different request body');
      if (!slot.response) throw new ConflictError('a request with this Idempotency-Key is still in progress; retry shortly');
      return { ...slot.response, replayed: true };
    }
    try {
      const response = await fn();
      await this.redis.set(k, JSON.stringify({ hash, response } satisfies Slot), 'EX', this.ttlSeconds);
      return { ...response, replayed: false };
    } catch (err) {
      // Not released, a retry with this key answers 409 "in progress" until the key expires: say so.
      await this.redis.del(k).catch((e: Error) => this.log?.warn({ err: e.message, scope }, 'Idempotency-Key not released after a failed request; it holds until it expires'));
      throw err;
    }
  }
}
