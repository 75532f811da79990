import type { Redis } from 'ioredis';
import {
  type AgentConfig,
  agentConfigInput,
  type AgentDoc,
  agentIdSchema,
  type AgentSpec,
  type AgentStore,
  type AgentVersionDoc,
  changeChannel,
  configKey,
  type Entry,
  storeEntry,
  toAgentConfig,
  versionId,
} from '../../common/agents/index.js';
import { isDuplicateKey } from '../../common/mongo.js';
import { AgentNotFoundError, AgentVersionNotFoundError, ConflictError, ValidationError } from '../../common/errors.js';
import { parseOrThrow } from '../../common/validate.js';
import { mergePatch } from './merge-patch.js';

export interface RegistryOptions {
  store: AgentStore;
  redis: Redis;
  prefix: string;
  cacheTtl: number;
}

export interface VersionView {
  agentId: string;
  version: number;
  deleted: boolean;
  createdAt: string;
  config: AgentConfig | null;
}

/** Same JSON whatever the key order: decides whether a write changes anything. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * What a write follows: the `agents` document as read, or what the Redis entry
 * says of it (`spec` and `createdAt` are only known for a live agent).
 */
interface Prior {
  version: number;
  deleted: boolean;
  spec?: AgentSpec;
  createdAt?: Date;
}

/** The spec inside a cached config: the config less the fields toAgentConfig adds. */
function specOf(config: AgentConfig): AgentSpec {
  const { version: _v, createdAt: _c, updatedAt: _u, ...spec } = config;
  return spec as AgentSpec;
}

const sameSpec = (prior: Prior | null, spec: AgentSpec) => !!prior && !prior.deleted && !!prior.spec && canonical(prior.spec) === canonical(spec);

/**
 * The agent registry: every write is a new version, kept forever; caches are
 * moved forward and told about it before the write is acknowledged.
 *
 * A register that changes something costs three round trips in a row: one
 * Redis read, the version row's insert, then `agents` moved and the Redis
 * script (cache entry and change message) at once. It starts from the
 * agent's Redis entry instead of reading `agents`. That entry can only lag MongoDB (it is written after it and only
 * ever moved forward), and a lagging one makes the version row's insert meet
 * a taken `_id`, after which the write goes on from what MongoDB holds.
 */
export class AgentRegistry {
  constructor(private readonly o: RegistryOptions) {}

  async register(body: unknown): Promise<{ config: AgentConfig; created: boolean }> {
    const spec = parseOrThrow(agentConfigInput, body);
    let prior: Prior | null | undefined;
    let redisDown: unknown;
    try {
      prior = await this.cachedPrior(spec.id);
    } catch (err) {
      redisDown = err;
    }
    // No entry, or one that says nothing changes: MongoDB decides (an unchanged register writes nothing).
    if (prior === undefined || sameSpec(prior, spec)) {
      const cur = await this.o.store.current(spec.id);
      if (cur && sameSpec(cur, spec)) return { config: toAgentConfig(cur), created: false };
      // Redis first: a write the caches cannot hear about is refused before MongoDB changes.
      if (redisDown) throw redisDown;
      prior = cur;
    }
    const w = await this.write(spec.id, spec, prior, Promise.resolve(), (latest) => sameSpec(latest, spec));
    return { config: toAgentConfig(w.doc), created: w.wrote && (!w.prior || w.prior.deleted) };
  }

  async get(id: string): Promise<AgentConfig> {
    const agentId = this.id(id);
    return toAgentConfig(await this.current(agentId));
  }

  async list(limit: number, cursor?: string): Promise<{ items: AgentConfig[]; nextCursor: string | null }> {
    const docs = await this.o.store.listCurrent(limit, cursor);
    const page = docs.slice(0, limit);
    return { items: page.map(toAgentConfig), nextCursor: docs.length > limit ? page[page.length - 1]!._id : null };
  }

  async patch(id: string, body: unknown): Promise<AgentConfig> {
    const agentId = this.id(id);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ValidationError([{ field: '', message: 'expected a JSON object (merge patch)' }]);
    }
    if ('id' in body && String((body as { id: unknown }).id) !== agentId) {
      throw new ValidationError([{ field: 'id', message: 'the id cannot be changed' }]);
    }
    const redisUp = this.redisCheck();
    const cur = await this.current(agentId);
    const merged = mergePatch(cur.spec, { ...body, id: agentId });
    const spec = parseOrThrow(agentConfigInput, merged);
    if (canonical(cur.spec) === canonical(spec)) return toAgentConfig(cur);
    return toAgentConfig((await this.write(agentId, spec, cur, redisUp)).doc);
  }

  async remove(id: string): Promise<void> {
    const agentId = this.id(id);
    const redisUp = this.redisCheck();
    await this.write(agentId, null, await this.current(agentId), redisUp);
  }

  async versions(id: string, limit: number, before?: number): Promise<{ items: VersionView[]; nextCursor: string | null }> {
    const agentId = this.id(id);
    const rows = await this.o.store.listVersions(agentId, limit, before);
    if (rows.length === 0 && before === undefined) throw new AgentNotFoundError(agentId);
    const page = rows.slice(0, limit);
    return { items: page.map(versionView), nextCursor: rows.length > limit ? String(page[page.length - 1]!.version) : null };
  }

  async version(id: string, version: number): Promise<VersionView> {
    const agentId = this.id(id);
    const row = await this.o.store.version(agentId, version);
    if (!row) throw new AgentVersionNotFoundError(agentId, version);
    return versionView(row);
  }

  async rollback(id: string, version: number): Promise<AgentConfig> {
    const agentId = this.id(id);
    const redisUp = this.redisCheck();
    const [cur, row] = await Promise.all([this.current(agentId), this.o.store.version(agentId, version)]);
    if (!row) throw new AgentVersionNotFoundError(agentId, version);
    if (!row.spec) throw new ConflictError(`version ${version} records a deletion; pick a version with a config`);
    return toAgentConfig((await this.write(agentId, row.spec, cur, redisUp)).doc);
  }

  private id(raw: string): string {
    return parseOrThrow(agentIdSchema, raw, ['id']);
  }

  private async current(agentId: string): Promise<AgentDoc> {
    const doc = await this.o.store.current(agentId);
    if (!doc || doc.deleted) throw new AgentNotFoundError(agentId);
    return doc;
  }

  /**
   * What the agent's Redis entry says the latest version is: undefined when
   * there is no usable entry, null for an id that never had a version.
   * Throws when Redis does not answer.
   */
  private async cachedPrior(agentId: string): Promise<Prior | null | undefined> {
    const raw = await this.o.redis.get(configKey(this.o.prefix, agentId));
    if (!raw) return undefined;
    let entry: Entry;
    try {
      entry = JSON.parse(raw) as Entry;
    } catch {
      return undefined;
    }
    if (!Number.isSafeInteger(entry?.version) || entry.version < 0) return undefined;
    if ('missing' in entry) return entry.version === 0 ? null : { version: entry.version, deleted: true };
    if (entry.config?.id !== agentId) return undefined;
    return { version: entry.version, deleted: false, spec: specOf(entry.config), createdAt: new Date(entry.config.createdAt) };
  }

  /**
   * Redis first: a write the caches cannot hear about is refused before
   * MongoDB changes. Started alongside the write's read; only a write awaits
   * it, so its failure is handled here until then.
   */
  private redisCheck(): Promise<void> {
    const ping = this.o.redis.ping().then(() => undefined);
    ping.catch(() => undefined);
    return ping;
  }

  /**
   * Claims version n+1 in agent_versions (its `_id` admits one writer), n being
   * the version of `prior`, then moves `agents` to it, then the caches. A
   * version already taken — by a concurrent writer, by a write that crashed
   * between the two steps, or because `prior` came from a lagging cache — is
   * rolled forward (both reads by `_id`) and the next one tried; `same` says
   * whether what MongoDB then holds already is this write, which then writes
   * nothing.
   */
  private async write(
    agentId: string,
    spec: AgentSpec | null,
    prior: Prior | null,
    redisUp: Promise<void>,
    same?: (latest: AgentDoc) => boolean,
  ): Promise<{ doc: AgentDoc; prior: Prior | null; wrote: boolean }> {
    await redisUp;
    let version = (prior?.version ?? 0) + 1;
    for (let attempt = 0; attempt < 8; attempt++) {
      const now = new Date();
      try {
        await this.o.store.insertVersion({ _id: versionId(agentId, version), agentId, version, spec, deleted: spec === null, createdAt: now });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        const [row, latest] = await Promise.all([this.o.store.version(agentId, version), this.o.store.current(agentId)]);
        let cur: AgentDoc;
        if (latest && latest.version >= version) cur = latest;
        else if (row) cur = await this.rollForward(row, latest ?? prior);
        else continue; // the row went away meanwhile: try the same version again
        if (same?.(cur)) return { doc: cur, prior: cur, wrote: false };
        prior = cur;
        version = cur.version + 1;
        continue;
      }
      const doc = await this.project({ agentId, version, spec, deleted: spec === null, createdAt: now }, prior);
      return { doc, prior, wrote: true };
    }
    throw new ConflictError(`agent ${JSON.stringify(agentId)} is being changed concurrently; retry`);
  }

  private rollForward(row: AgentVersionDoc, prior: Prior | null): Promise<AgentDoc> {
    return this.project(row, prior);
  }

  /**
   * Moves the `agents` document to `row` unless it is already at or past it,
   * and the caches with it. Its guard is the one filter of a write that is
   * not a bare `_id`: `agents` holds one small document per agent, and the
   * guard keeps a slow writer from moving it back.
   *
   * The two go at once: the version row already is the record, so a cache
   * that hears of version n before `agents` holds it says nothing untrue,
   * and if moving `agents` fails the next write rolls it forward (its insert
   * meets the taken `_id`).
   */
  private async project(row: AgentVersionDoc, prior: Prior | null): Promise<AgentDoc> {
    const deleted = row.spec === null;
    const spec = (row.spec ?? prior?.spec) as AgentSpec;
    const recreated = !prior || prior.deleted;
    const doc: AgentDoc = {
      _id: row.agentId,
      version: row.version,
      spec,
      deleted,
      createdAt: recreated && !deleted ? row.createdAt : (prior?.createdAt ?? row.createdAt),
      updatedAt: row.createdAt,
    };
    const moved = this.o.store.moveCurrent(doc).catch((err: unknown) => {
      // The upsert found the document already past this version: a newer write won, which is fine.
      if (!isDuplicateKey(err)) throw err;
    });
    const announced = this.announce(row.agentId, doc);
    await Promise.all([moved, announced]);
    return doc;
  }

  /** The Redis entry moved forward and the change message sent: one script, one round trip. */
  private async announce(agentId: string, doc: AgentDoc): Promise<void> {
    const entry: Entry = doc.deleted ? { version: doc.version, missing: true } : { version: doc.version, config: toAgentConfig(doc) };
    await storeEntry(this.o.redis, this.o.prefix, agentId, entry, this.o.cacheTtl, changeChannel(this.o.prefix));
  }
}

function versionView(row: AgentVersionDoc): VersionView {
  return {
    agentId: row.agentId,
    version: row.version,
    deleted: row.deleted,
    createdAt: new Date(row.createdAt).toISOString(),
    config: row.spec ? toAgentConfig({ spec: row.spec, version: row.version, createdAt: row.createdAt, updatedAt: row.createdAt }) : null,
  };
}
