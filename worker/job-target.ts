import { parseRoomName } from '../common/rooms.js';
import { asGeneration } from '../common/sessions/dispatch-metadata.js';

export interface JobTarget {
  agentId?: string;
  sessionId?: string;
  configVersion?: number;
  /** The placement generation of the dispatch (0 for the first). */
  generation: number;
  /** When the session was requested, for the stage-by-stage timing. */
  requestedAt?: number;
}

/**
 * Which agent a job is for: the dispatch metadata's `agentId`, else the room
 * name (`agent-{id}-room…`), as in the original deployment.
 */
export function jobTarget(metadata: string | undefined, roomName: string | undefined): JobTarget {
  let meta: Record<string, unknown> = {};
  try {
    const parsed: unknown = metadata ? JSON.parse(metadata) : {};
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) meta = parsed as Record<string, unknown>;
  } catch {
    /* not JSON: fall back to the room name */
  }
  const agentId = typeof meta.agentId === 'string' || typeof meta.agentId === 'number' ? String(meta.agentId) : roomName ? parseRoomName(roomName)?.agentId : undefined;
  return {
    ...(agentId ? { agentId } : {}),
    ...(typeof meta.sessionId === 'string' ? { sessionId: meta.sessionId } : {}),
    ...(typeof meta.configVersion === 'number' ? { configVersion: meta.configVersion } : {}),
    generation: asGeneration(meta.generation),
    ...(typeof meta.requestedAt === 'string' && Number.isFinite(Date.parse(meta.requestedAt)) ? { requestedAt: Date.parse(meta.requestedAt) } : {}),
  };
}
