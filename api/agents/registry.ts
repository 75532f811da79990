import type { Redis } from 'ioredis';
import { changeChannel, storeEntry, type Entry } from '../../common/agent-resolver.js';
import { toAgentConfig } from '../../common/agent-view.js';
import { AgentNotFoundError, ConflictError, NotFoundError, translateOutages, ValidationError } from '../../common/errors.js';
import type { AgentDoc, AgentModels, AgentVersionDoc } from '../../common/models/agent.js';
import { agentConfigInput, agentIdSchema, type AgentConfig, type AgentSpec } from '../../common/schemas/agent-config.js';
import { parseOrThrow } from '../../common/validate.js';
import { mergePatch } from './merge-patch.js';

export interface RegistryOptions {
  models: AgentModels;
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

const isDuplicateKey = (err: unknown) => (err as { code?: number })?.code === 11000;

/**
 * The agent registry: every write is a new version, kept forever; caches are
 * moved forward and told about it before the write is acknowledged.
 */
export class AgentRegistry {
  constructor(private readonly o: RegistryOptions) {}

  async register(body: unknown): Promise<{ config: AgentConfig; created: boolean }> {
    const spec = parseOrThrow(agentConfigInput, body);
    return this.guard(async () => {
      const cur = await this.o.models.Agent.findById(spec.id).lean();
      if (cur && !cur.deleted && canonical(cur.spec) === canonical(spec)) return { config: toAgentConfig(cur), created: false };
      const doc = await this.write(spec.id, spec);
      return { config: toAgentConfig(doc), created: !cur || cur.deleted };
    });
  }

  async get(id: string): Promise<AgentConfig> {
    const agentId = this.id(id);
    return this.guard(async () => toAgentConfig(await this.current(agentId)));
  }

  async list(limit: number, cursor?: string): Promise<{ items: AgentConfig[]; nextCursor: string | null }> {
    return this.guard(async () => {
      const filter: Record<string, unknown> = { deleted: false };
      if (cursor) filter._id = { $gt: cursor };
      const docs = await this.o.models.Agent.find(filter).sort({ _id: 1 }).limit(limit + 1).lean();
      const page = docs.slice(0, limit);
      return { items: page.map(toAgentConfig), nextCursor: docs.length > limit ? page[page.length - 1]!._id : null };
    });
  }

  async patch(id: string, body: unknown): Promise<AgentConfig> {
    const agentId = this.id(id);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ValidationError([{ field: '', message: 'expected a JSON object (merge patch)' }]);
    }
    if ('id' in body && String((body as { id: unknown }).id) !== agentId) {
      throw new ValidationError([{ field: 'id', message: 'the id cannot be changed' }]);
    }
    return this.guard(async () => {
      const cur = await this.current(agentId);
      const merged = mergePatch(cur.spec, { ...body, id: agentId });
      const spec = parseOrThrow(agentConfigInput, merged);
      if (canonical(cur.spec) === canonical(spec)) return toAgentConfig(cur);
      return toAgentConfig(await this.write(agentId, spec));
    });
  }

  async remove(id: string): Promise<void> {
    const agentId = this.id(id);
    await this.guard(async () => {
      await this.current(agentId);
      await this.write(agentId, null);
    });
  }

  async versions(id: string, limit: number, before?: number): Promise<{ items: VersionView[]; nextCursor: string | null }> {
    const agentId = this.id(id);
    return this.guard(async () => {
      const filter: Record<string, unknown> = { agentId };
      if (before !== undefined) filter.version = { $lt: before };
      const rows = await this.o.models.AgentVersion.find(filter).sort({ version: -1 }).limit(limit + 1).lean();
      if (rows.length === 0 && before === undefined) throw new AgentNotFoundError(agentId);
      const page = rows.slice(0, limit);
      return { items: page.map(versionView), nextCursor: rows.length > limit ? String(page[page.length - 1]!.version) : null };
    });
  }

  async version(id: string, version: number): Promise<VersionView> {
    const agentId = this.id(id);
    return this.guard(async () => {
      const row = await this.o.models.AgentVersion.findOne({ agentId, version }).lean();
      if (!row) throw new NotFoundError(`agent ${JSON.stringify(agentId)} has no version ${version}`);
      return versionView(row);
    });
  }

  async rollback(id: string, version: number): Promise<AgentConfig> {
    const agentId = this.id(id);
    return this.guard(async () => {
      await this.current(agentId);
      const row = await this.o.models.AgentVersion.findOne({ agentId, version }).lean();
      if (!row) throw new NotFoundError(`agent ${JSON.stringify(agentId)} has no version ${version}`);
      if (!row.spec) throw new ConflictError(`version ${version} records a deletion; pick a version with a config`);
      return toAgentConfig(await this.write(agentId, row.spec));
    });
  }

  private id(raw: string): string {
    return parseOrThrow(agentIdSchema, raw, ['id']);
  }

  private async current(agentId: string): Promise<AgentDoc> {
    const doc = await this.o.models.Agent.findById(agentId).lean();
    if (!doc || doc.deleted) throw new AgentNotFoundError(agentId);
    return doc;
  }

  /**
   * Claims version n+1 in agent_versions (the unique index admits one writer),
   * then moves `agents` to it, then the caches. A crash between the two steps
   * leaves a claimed version that the next write rolls forward first.
   */
  private async write(agentId: string, spec: AgentSpec | null): Promise<AgentDoc> {
    // Redis first: a write the caches cannot hear about is refused before MongoDB changes.
    await this.o.redis.ping();
    const { Agent, AgentVersion } = this.o.models;
    for (let attempt = 0; attempt < 8; attempt++) {
      const [cur, latest] = await Promise.all([
        Agent.findById(agentId).lean(),
        AgentVersion.findOne({ agentId }).sort({ version: -1 }).lean(),
      ]);
      if (latest && latest.version > (cur?.version ?? 0)) await this.rollForward(latest, cur);
      const version = Math.max(cur?.version ?? 0, latest?.version ?? 0) + 1;
      const now = new Date();
      try {
        await AgentVersion.create({ agentId, version, spec, deleted: spec === null, createdAt: now });
      } catch (err) {
        if (isDuplicateKey(err)) continue; // another writer took this version: read again
        throw err;
      }
      const doc = await this.project({ agentId, version, spec, deleted: spec === null, createdAt: now }, cur);
      await this.announce(agentId, doc);
      return doc;
    }
    throw new ConflictError(`agent ${JSON.stringify(agentId)} is being changed concurrently; retry`);
  }

  private async rollForward(row: AgentVersionDoc, cur: AgentDoc | null): Promise<void> {
    const doc = await this.project(row, cur);
    await this.announce(row.agentId, doc);
  }

  /** Moves the `agents` document to `row` unless it is already at or past it. */
  private async project(row: AgentVersionDoc, cur: AgentDoc | null): Promise<AgentDoc> {
    const deleted = row.spec === null;
    const spec = (row.spec ?? cur?.spec) as AgentSpec;
    const recreated = !cur || cur.deleted;
    const doc: AgentDoc = {
      _id: row.agentId,
      version: row.version,
      spec,
      deleted,
      createdAt: recreated && !deleted ? row.createdAt : (cur?.createdAt ?? row.createdAt),
      updatedAt: row.createdAt,
    };
    try {
      await this.o.models.Agent.updateOne(
        { _id: row.agentId, version: { $lt: row.version } },
        { $set: { version: doc.version, spec: doc.spec, deleted, createdAt: doc.createdAt, updatedAt: doc.updatedAt } },
        { upsert: true },
      );
    } catch (err) {
      // The upsert found the document already past this version: a newer write won, which is fine.
      if (!isDuplicateKey(err)) throw err;
    }
    return doc;
  }

  private async announce(agentId: string, doc: AgentDoc): Promise<void> {
    const entry: Entry = doc.deleted ? { version: doc.version, missing: true } : { version: doc.version, config: toAgentConfig(doc) };
    await storeEntry(this.o.redis, this.o.prefix, agentId, entry, this.o.cacheTtl);
    await this.o.redis.publish(changeChannel(this.o.prefix), JSON.stringify({ agentId, version: doc.version }));
  }

  /** Translates dependency outages into 503s; everything else passes through. */
  private guard<T>(fn: () => Promise<T>): Promise<T> {
    return translateOutages(fn);
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
