import { parseRoomName } from '../common/rooms.js';
import { AGENT_ATTRIBUTE, parseDispatchMetadata, SESSION_ATTRIBUTE, SOURCE_ATTRIBUTE } from '../common/sessions/index.js';

export interface JobTarget {
  agentId?: string;
  sessionId?: string;
  /** The agent's config version the session runs; absent, the current one runs. */
  configVersion?: number;
  /** The placement generation of the dispatch (0 for the first). */
  generation: number;
  /** When the session was requested, for the stage-by-stage timing. */
  requestedAt?: number;
  /** A job LiveKit dispatched automatically: its session starts with it, no request or placement behind it. */
  automatic?: boolean;
}

/**
 * Which agent a job is for: the dispatch metadata's `agentId`, else the room
 * name (`agent-{id}-room…`), as in the original deployment; and which version
 * of its config, when the metadata names one. An automatically dispatched job
 * has no metadata: its worker named the session and agent when it accepted the
 * job (`attributes`, the agent participant's attributes); it runs the current config.
 */
export function jobTarget(metadata: string | undefined, roomName: string | undefined, attributes: Record<string, string> = {}): JobTarget {
  if (attributes[SOURCE_ATTRIBUTE] === 'automatic' && attributes[SESSION_ATTRIBUTE] && attributes[AGENT_ATTRIBUTE]) {
    return { agentId: attributes[AGENT_ATTRIBUTE], sessionId: attributes[SESSION_ATTRIBUTE], generation: 0, automatic: true };
  }
  const meta = parseDispatchMetadata(metadata);
  const agentId = meta.agentId ?? (roomName ? parseRoomName(roomName)?.agentId : undefined);
  return {
    ...(agentId ? { agentId } : {}),
    ...(meta.sessionId ? { sessionId: meta.sessionId } : {}),
    ...(meta.configVersion !== undefined ? { configVersion: meta.configVersion } : {}),
    generation: meta.generation ?? 0,
    ...(meta.requestedAt ? { requestedAt: Date.parse(meta.requestedAt) } : {}),
  };
}
