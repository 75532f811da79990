import { Schema, type Connection, type Model } from 'mongoose';
import type { AgentSpec } from '../schemas/agent-config.js';

/**
 * Storage of the AgentConfig contract. The spec itself is validated by its zod
 * schema before any write and kept as one document field, so the zod schema
 * stays the only definition of its fields.
 *
 * `agents` holds the current version of each agent; `agent_versions` every
 * version ever written. A write claims version n+1 in `agent_versions` first
 * (its unique index admits one writer per version), then moves `agents`
 * forward to it.
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

const agentVersionSchema = new Schema<AgentVersionDoc>(
  {
    agentId: { type: String, required: true },
    version: { type: Number, required: true },
    spec: { type: Schema.Types.Mixed, default: null },
    deleted: { type: Boolean, required: true, default: false },
    createdAt: { type: Date, required: true },
  },
  { collection: 'agent_versions', versionKey: false, minimize: false, strict: 'throw' },
);
agentVersionSchema.index({ agentId: 1, version: 1 }, { unique: true });

export interface AgentModels {
  Agent: Model<AgentDoc>;
  AgentVersion: Model<AgentVersionDoc>;
}

export async function agentModels(conn: Connection): Promise<AgentModels> {
  const Agent = conn.models.Agent ?? conn.model<AgentDoc>('Agent', agentSchema);
  const AgentVersion = conn.models.AgentVersion ?? conn.model<AgentVersionDoc>('AgentVersion', agentVersionSchema);
  await AgentVersion.init();
  return { Agent: Agent as Model<AgentDoc>, AgentVersion: AgentVersion as Model<AgentVersionDoc> };
}
