import type { AgentDoc, AgentModels, AgentVersionDoc } from './model.js';
import { versionId } from './model.js';

/**
 * Every MongoDB query of agents and their versions, for the registry (api/)
 * and the resolver: code outside this folder goes through here and never
 * holds the models. Lookups are by `_id` wherever they can be (see model.ts
 * for why); the two listings are the exceptions.
 */
export class AgentStore {
  constructor(private readonly models: AgentModels) {}

  /** The `agents` document (current version), deleted or not; null for an id never written. */
  current(agentId: string): Promise<AgentDoc | null> {
    return this.models.Agent.findById(agentId).lean<AgentDoc>().exec();
  }

  /** Live agents in id order, `limit + 1` of them from after `cursor` (the extra one says there is more). */
  listCurrent(limit: number, cursor?: string): Promise<AgentDoc[]> {
    const filter: Record<string, unknown> = { deleted: false };
    if (cursor) filter._id = { $gt: cursor };
    return this.models.Agent.find(filter).sort({ _id: 1 }).limit(limit + 1).lean<AgentDoc[]>().exec();
  }

  /** Version rows newest first, `limit + 1` of them below `before`. */
  listVersions(agentId: string, limit: number, before?: number): Promise<AgentVersionDoc[]> {
    const filter: Record<string, unknown> = { agentId };
    if (before !== undefined) filter.version = { $lt: before };
    return this.models.AgentVersion.find(filter).sort({ version: -1 }).limit(limit + 1).lean<AgentVersionDoc[]>().exec();
  }

  /** One version row, by its `_id`; rows written before compound `_id`s are found by their fields. */
  async version(agentId: string, version: number): Promise<AgentVersionDoc | null> {
    const { AgentVersion } = this.models;
    return (await AgentVersion.findById(versionId(agentId, version)).lean<AgentVersionDoc>()) ?? (await AgentVersion.findOne({ agentId, version }).lean<AgentVersionDoc>());
  }

  /** Claims a version: the insert fails with a duplicate key when the version is taken. */
  async insertVersion(row: AgentVersionDoc & { _id: string }): Promise<void> {
    await this.models.agentVersions.insertOne(row);
  }

  /**
   * Moves the `agents` document to `doc` unless it is already at or past its
   * version (the guard is the one write filter that is not a bare `_id`). A
   * duplicate key means the upsert met the document already past it.
   */
  async moveCurrent(doc: AgentDoc): Promise<void> {
    const { _id, ...fields } = doc;
    await this.models.agents.updateOne({ _id, version: { $lt: doc.version } }, { $set: fields }, { upsert: true });
  }
}
