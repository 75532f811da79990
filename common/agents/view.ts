import type { AgentDoc } from './model.js';
import type { AgentConfig } from './schema.js';

/** The public shape of a stored agent. */
export function toAgentConfig(doc: Pick<AgentDoc, 'spec' | 'version' | 'createdAt' | 'updatedAt'>): AgentConfig {
  return {
    ...doc.spec,
    version: doc.version,
    createdAt: new Date(doc.createdAt).toISOString(),
    updatedAt: new Date(doc.updatedAt).toISOString(),
  };
}
