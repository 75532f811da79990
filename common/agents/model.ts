import { Schema, type Connection, type Model, type mongo } from 'mongoose';
import type { AgentSpec } from './schema.js';

/**
 * Storage of the AgentConfig contract. The spec itself is validated by its zod
 * schema before any write and kept as one document field, so the zod schema
 * stays the only definition of its fields.
 *
 * `agents` holds the current version of each agent; `agent_versions` every
 * version ever written, each under the `_id` `versionId(agentId, version)`.
 * A write claims version n+1 in `agent_versions` first (the `_id`, like the
 * unique index, admits one writer per version), then moves `agents` forward
 * to it. Every lookup a write makes is by `_id`, and none sorts versions: the
 * development server (FerretDB on SQLite) scans the whole collection for any
 * other filter.
 */
export interface AgentDoc {
  _id: string;
  version: number;
  spec: AgentSpec;
  deleted: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface AgentVersionDoc {
  /** `versionId(agentId, version)`; rows written before it was used have an ObjectId. */
  _id?: string;
  agentId: string;
  version: number;
  spec: AgentSpec | null;
  deleted: boolean;
  createdAt: Date;
}

const agentSchema = new Schema<AgentDoc>(
  {
    _id: { type: String, required: true },
    version: { type: Number, required: true },
    spec: { type: Schema.Types.Mixed, required: true },
    deleted: { type: Boolean, required: true, default: false },
    createdAt: { type: Date, required: true },
    updatedAt: { type: Date, required: true },
  },
  { collection: 'agents', versionKey: false, minimize: false, strict: 'throw' },
);

/** The `_id` of an agent's version row. Agent ids never contain `@` (agentIdSchema). */
export function versionId(agentId: string, version: number): string {
  return `${agentId}@${version}`;
}

const agentVersionSchema = new Schema<AgentVersionDoc>(
  {
    _id: { type: String, required: true },
    agentId: { type: String, required: true },
    version: { type: Number, required: true },
    spec: { type: Schema.Types.Mixed, default: null },
    deleted: { type: Boolean, required: true, default: false },
    createdAt: { type: Date, required: true },
  },
  { collection: 'agent_versions', versionKey: false, minimize: false, strict: 'throw' },
);
// Serves the version listing on MongoDB, and keeps one row per version among rows of either `_id` kind.
agentVersionSchema.index({ agentId: 1, version: 1 }, { unique: true });

export interface AgentModels {
  Agent: Model<AgentDoc>;
  AgentVersion: Model<AgentVersionDoc>;
  /**
   * The same two collections through the driver, for the registry's writes:
   * their documents are built in code, and mongoose's document build and
   * casting cost more CPU than the round trip itself.
   */
  agents: mongo.Collection<AgentDoc>;
  agentVersions: mongo.Collection<AgentVersionDoc>;
}

export async function agentModels(conn: Connection): Promise<AgentModels> {
  const Agent = conn.models.Agent ?? conn.model<AgentDoc>('Agent', agentSchema);
  const AgentVersion = conn.models.AgentVersion ?? conn.model<AgentVersionDoc>('AgentVersion', agentVersionSchema);
  await AgentVersion.init();
  return {
    Agent: Agent as Model<AgentDoc>,
    AgentVersion: AgentVersion as Model<AgentVersionDoc>,
    agents: Agent.collection as unknown as mongo.Collection<AgentDoc>,
    agentVersions: AgentVersion.collection as unknown as mongo.Collection<AgentVersionDoc>,
  };
}
