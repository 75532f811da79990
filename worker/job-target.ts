import { parseRoomName } from '../common/rooms.js';
import { parseDispatchMetadata } from '../common/sessions/index.js';

export interface JobTarget {
  agentId?: string;
  sessionId?: string;
  /** The agent's config version the session runs; absent, the current one runs. */
  configVersion?: number;
  /** The placement generation of the dispatch (0 for the first). */
  generation: number;
  /** When the session was requested, for the stage-by-stage timing. */
  requestedAt?: number;
}

/**
 * Which agent a job is for: the dispatch metadata's `agentId`, else the room
 * name (`agent-{id}-room…`), as in the original deployment; and which version
 * of its config, when the metadata names one.
 */
export function jobTarget(metadata: string | undefined, roomName: string | undefined): JobTarget {
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
