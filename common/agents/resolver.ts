import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { type AgentModels, versionId } from './model.js';
import type { AgentConfig } from './schema.js';
import { AgentStore } from './store.js';
import { AgentNotFoundError, AgentVersionNotFoundError, isMongoUnavailable, UnavailableError } from '../errors.js';
import { toAgentConfig } from './view.js';
import { redisReady } from '../redis.js';

/**
 * Read-through resolution of agent configs: in-process LRU → Redis → MongoDB.
 *
 * Every entry carries the agent's version, and Redis is only ever moved
 * forward (a compare-and-set script), so a slow reader can never put an older
 * config over a newer one. Registry writes replace the Redis entry and
 * publish on `{prefix}:agent-config:changed`; every resolver drops its LRU
 * entry on that message.
 *
 * A session runs the version it was asked for (`resolveVersion`): versions
 * never change once written, so their entries need no invalidation and the
 * in-process ones no TTL; they have an LRU and a Redis key of their own.
 */
export type Tier = 'lru' | 'redis' | 'mongo';

export interface Resolved {
  config: AgentConfig;
  tier: Tier;
}

/** A cache entry: a config, or the fact that the id has none (deleted or never registered). */
export type Entry = { version: number; config: AgentConfig } | { version: number; missing: true };

export interface ResolverOptions {
  redis: Redis;
  /** A connection of its own for SUBSCRIBE. */
  subscriber: Redis;
  models: AgentModels;
  prefix: string;
  /** Seconds a config stays in Redis. */
  redisTtl?: number;
  /** Seconds an unknown id stays cached as missing, in Redis and in process. */
  negativeTtl?: number;
  /** Milliseconds a config stays in the process without a change message. */
  lruTtlMs?: number;
  lruMax?: number;
  onTier?: (tier: Tier | 'miss', seconds: number) => void;
}

/**
 * Sets the key only if it holds nothing or an older version; with a channel
 * (ARGV[4]), then publishes the change message (ARGV[5]) whatever it did, so a
 * registry write moves the entry and announces it in one round trip.
 */
const CAS_SCRIPT = `
local stored = 1
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and tonumber(obj.version) and tonumber(obj.version) > tonumber(ARGV[2]) then
    stored = 0
  end
end
if stored == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
end
if ARGV[4] then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return stored`;

export function configKey(prefix: string, agentId: string): string {
  return `${prefix}:agent-config:${agentId}`;
}

/** The Redis entry of one version: agent ids never contain '@', so it cannot be another agent's key. */
export function versionKey(prefix: string, agentId: string, version: number): string {
  return configKey(prefix, versionId(agentId, version));
}

/**
 * Seconds a version's Redis entry is kept. Not for freshness (a version never
 * changes): only so Redis, which holds the queues and must not evict, does not
 * keep every version ever run.
 */
export const VERSION_REDIS_TTL = 24 * 3600;

export function changeChannel(prefix: string): string {
  return `${prefix}:agent-config:changed`;
}

/**
 * Writes an entry to Redis unless a newer one is there. Used by resolvers and
 * by the registry, which also names the change channel: `{agentId, version}`
 * is published there in the same script.
 */
export async function storeEntry(redis: Redis, prefix: string, agentId: string, entry: Entry, ttlSeconds: number, announceOn?: string): Promise<void> {
  const args = [JSON.stringify(entry), String(entry.version), String(ttlSeconds)];
  if (announceOn) args.push(announceOn, JSON.stringify({ agentId, version: entry.version }));
  await redis.eval(CAS_SCRIPT, 1, configKey(prefix, agentId), ...args);
}

export class AgentResolver {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<{ entry: Entry; tier: Tier }>>();
  /** Versions by `versionId`: no TTL (a version never changes); unknown ones for `negativeTtl`. */
  private readonly versions: LRUCache<string, Entry>;
  private readonly versionInflight = new Map<string, Promise<{ entry: Entry; tier: Tier }>>();
  private readonly store: AgentStore;
  /** Newest version announced per id: a fill older than it is not kept. */
  private readonly announced = new Map<string, number>();
  private readonly opts: Required<Omit<ResolverOptions, 'onTier'>> & Pick<ResolverOptions, 'onTier'>;
  /** Counts of MongoDB reads, for tests and metrics. */
  mongoReads = 0;

  constructor(options: ResolverOptions) {
    this.opts = { redisTtl: 300, negativeTtl: 5, lruTtlMs: 60_000, lruMax: 10_000, ...options };
    this.lru = new LRUCache<string, Entry>({ max: this.opts.lruMax, ttl: this.opts.lruTtlMs, noDeleteOnStaleGet: true });
    this.versions = new LRUCache<string, Entry>({ max: this.opts.lruMax });
    this.store = new AgentStore(this.opts.models);
  }

  /**
   * Starts listening for change messages; resolves once subscribed and the
   * cache connection is up (or has had its chance), so the first resolution
   * right after start reads Redis instead of taking it for down.
   */
  async start(): Promise<void> {
    const channel = changeChannel(this.opts.prefix);
    this.opts.subscriber.on('message', (ch: string, message: string) => {
      if (ch !== channel) return;
      try {
        const { agentId, version } = JSON.parse(message) as { agentId: string; version: number };
        this.invalidate(agentId, version);
      } catch {
        /* not ours */
      }
    });
    await Promise.all([this.opts.subscriber.subscribe(channel), redisReady(this.opts.redis)]);
  }

  /**
   * Walks both of a miss's round trips once — a Redis read, then a MongoDB
   * read — for an id no agent can have (ids never contain ':'), caching and
   * counting nothing. A process that does this before its first job (the
   * worker's prewarm) has MongoDB's pooled connection open (the driver opens
   * it on first use; Redis connects at once) and the code of both paths
   * compiled, so its first real resolution costs what a later one does.
   * Best effort: either store being away only leaves that path cold.
   */
  async warm(): Promise<void> {
    const id = ':warm';
    await this.opts.redis.get(configKey(this.opts.prefix, id)).catch(() => undefined);
    await this.store.current(id).catch(() => undefined);
  }

  invalidate(agentId: string, version: number): void {
    this.announced.set(agentId, Math.max(version, this.announced.get(agentId) ?? 0));
    const cur = this.lru.peek(agentId, { allowStale: true });
    if (!cur || cur.version < version) this.lru.delete(agentId);
    // A version asked for before it was written is known as missing: it exists now.
    const key = versionId(agentId, version);
    const known = this.versions.peek(key);
    if (known && 'missing' in known) this.versions.delete(key);
  }

  /** The current config of `agentId`, or AgentNotFoundError, or UnavailableError when nothing is cached and MongoDB is down. */
  async resolve(agentId: string): Promise<Resolved> {
    const started = performance.now();
    const hit = this.lru.get(agentId);
    if (hit) return this.answer(agentId, hit, 'lru', started);

    let pending = this.inflight.get(agentId);
    if (!pending) {
      pending = this.load(agentId).finally(() => this.inflight.delete(agentId));
      this.inflight.set(agentId, pending);
    }
    try {
      const { entry, tier } = await pending;
      return this.answer(agentId, entry, tier, started);
    } catch (err) {
      // MongoDB away and nothing fresh: an expired in-process copy is better than no agent.
      const stale = this.lru.get(agentId, { allowStale: true });
      if (stale && err instanceof UnavailableError) return this.answer(agentId, stale, 'lru', started);
      throw err;
    }
  }

  /**
   * The config of `agentId` at `version`, or AgentVersionNotFoundError (never
   * written, or a version that records a deletion), or UnavailableError when
   * nothing is cached and MongoDB is down. The agent's current entry answers
   * when it is at that version, which is the usual case (a session runs what
   * was current when it was asked for), so that costs what `resolve` does.
   */
  async resolveVersion(agentId: string, version: number): Promise<Resolved> {
    const started = performance.now();
    const key = versionId(agentId, version);
    const hit = this.versions.get(key) ?? this.currentAt(agentId, version, this.lru.get(agentId));
    if (hit) return this.answer(agentId, hit, 'lru', started, version);

    let pending = this.versionInflight.get(key);
    if (!pending) {
      pending = this.loadVersion(agentId, version).finally(() => this.versionInflight.delete(key));
      this.versionInflight.set(key, pending);
    }
    const { entry, tier } = await pending;
    return this.answer(agentId, entry, tier, started, version);
  }

  /** The agent's current entry as the entry of `version`, when it is that version (kept as such). */
  private currentAt(agentId: string, version: number, cur: Entry | undefined): Entry | undefined {
    if (!cur || 'missing' in cur || cur.version !== version) return undefined;
    this.versions.set(versionId(agentId, version), cur);
    return cur;
  }

  private answer(agentId: string, entry: Entry, tier: Tier, started: number, version?: number): Resolved {
    const seconds = (performance.now() - started) / 1000;
    if ('missing' in entry) {
      this.opts.onTier?.('miss', seconds);
      throw version === undefined ? new AgentNotFoundError(agentId) : new AgentVersionNotFoundError(agentId, version);
    }
    this.opts.onTier?.(tier, seconds);
    return { config: entry.config, tier };
  }

  private remember(agentId: string, entry: Entry): void {
    if (entry.version < (this.announced.get(agentId) ?? 0)) return;
    this.lru.set(agentId, entry, 'missing' in entry ? { ttl: this.opts.negativeTtl * 1000 } : {});
  }

  /** A MongoDB read, counted; MongoDB away is UnavailableError. */
  private async fromMongo<T>(read: () => Promise<T>): Promise<T> {
    this.mongoReads++;
    try {
      return await read();
    } catch (err) {
      if (isMongoUnavailable(err)) throw new UnavailableError('mongodb', { cause: err });
      throw err;
    }
  }

  private async load(agentId: string): Promise<{ entry: Entry; tier: Tier }> {
    const key = configKey(this.opts.prefix, agentId);
    let redisUp = true;
    try {
      const raw = await this.opts.redis.get(key);
      if (raw) {
        const entry = JSON.parse(raw) as Entry;
        this.remember(agentId, entry);
        return { entry, tier: 'redis' };
      }
    } catch {
      // Redis away: MongoDB still answers, only slower.
      redisUp = false;
    }

    const doc = await this.fromMongo(() => this.store.current(agentId));
    const entry: Entry = doc && !doc.deleted ? { version: doc.version, config: toAgentConfig(doc) } : { version: doc?.version ?? 0, missing: true };
    this.remember(agentId, entry);
    if (redisUp) {
      const ttl = 'missing' in entry ? this.opts.negativeTtl : this.opts.redisTtl;
      await storeEntry(this.opts.redis, this.opts.prefix, agentId, entry, ttl).catch(() => undefined);
    }
    return { entry, tier: 'mongo' };
  }

  /** One version: its own Redis key or the current one (one round trip), else its row in MongoDB. */
  private async loadVersion(agentId: string, version: number): Promise<{ entry: Entry; tier: Tier }> {
    const key = versionKey(this.opts.prefix, agentId, version);
    let redisUp = true;
    try {
      const [own, current] = await this.opts.redis.mget(key, configKey(this.opts.prefix, agentId));
      const entry = own ? (JSON.parse(own) as Entry) : this.currentAt(agentId, version, current ? (JSON.parse(current) as Entry) : undefined);
      if (entry) {
        this.versions.set(versionId(agentId, version), entry);
        return { entry, tier: 'redis' };
      }
    } catch {
      // Redis away: MongoDB still answers, only slower.
      redisUp = false;
    }

    const row = await this.fromMongo(() => this.store.version(agentId, version));
    const entry: Entry = row?.spec ? { version, config: toAgentConfig({ spec: row.spec, version, createdAt: row.createdAt, updatedAt: row.createdAt }) } : { version, missing: true };
    // An unknown version may be written later (it is the agent's next one): known as missing only briefly, only
    // here, and not at all once its change message came while MongoDB was read.
    if ('missing' in entry) {
      if ((this.announced.get(agentId) ?? 0) < version) this.versions.set(versionId(agentId, version), entry, { ttl: this.opts.negativeTtl * 1000 });
    } else {
      this.versions.set(versionId(agentId, version), entry);
      if (redisUp) await this.opts.redis.set(key, JSON.stringify(entry), 'EX', VERSION_REDIS_TTL).catch(() => undefined);
    }
    return { entry, tier: 'mongo' };
  }

  close(): void {
    this.lru.clear();
    this.versions.clear();
  }
}
