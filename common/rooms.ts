import { random36 } from './random.js';
import { AGENT_ID_PATTERN } from './agents/index.js';

/**
 * Room names follow the original deployment: `agent-{id}-room`. Each session
 * gets a room of its own, `agent-{id}-room-{suffix}`, where the suffix is 16
 * lowercase letters or digits: fixed length, no dash, so a name parses back
 * to exactly one (id, suffix) pair even when the id itself contains `-room`.
 */
export const ROOM_SUFFIX_PATTERN = /^[a-z0-9]{16}$/;
const ROOM_PATTERN = /^agent-([A-Za-z0-9_-]{1,64})-room(?:-([a-z0-9]{16}))?$/;

export function newRoomSuffix(): string {
  return random36(16);
}

export function buildRoomName(agentId: string, suffix?: string): string {
  if (!AGENT_ID_PATTERN.test(agentId)) throw new RangeError(`invalid agent id for a room name: ${JSON.stringify(agentId)}`);
  if (suffix !== undefined && !ROOM_SUFFIX_PATTERN.test(suffix)) throw new RangeError('room suffix must be 16 of [a-z0-9]');
  return suffix === undefined ? `agent-${agentId}-room` : `agent-${agentId}-room-${suffix}`;
}

export function parseRoomName(room: string): { agentId: string; suffix?: string } | undefined {
  const m = ROOM_PATTERN.exec(room);
  if (!m) return undefined;
  return m[2] === undefined ? { agentId: m[1]! } : { agentId: m[1]!, suffix: m[2] };
}

/**
 * The metadata of a room the dispatcher creates for a session. LiveKit hands
 * back a room that already exists unchanged, so a room whose metadata names
 * the session was made by the dispatcher, together with the session's
 * dispatch; any other (named by the caller, or opened by a user joining
 * first) may lack it.
 */
export function roomMetadataFor(sessionId: string): string {
  return JSON.stringify({ agentRuntime: { sessionId } });
}

/**
 * The metadata of a session's room opened by its user joining first with a
 * token that does not carry the dispatch (scheduled, capped, or waiting for a
 * worker slot): ours, so no automatically dispatched agent takes it, but not
 * made with the dispatch, which the dispatcher adds when the session's time comes.
 */
export function reservedRoomMetadata(sessionId: string): string {
  return JSON.stringify({ agentRuntime: { reservedFor: sessionId } });
}

function runtimePart(metadata: string | undefined): { sessionId?: unknown } | undefined {
  try {
    const parsed = JSON.parse(metadata || '{}') as { agentRuntime?: unknown };
    return parsed && typeof parsed.agentRuntime === 'object' && parsed.agentRuntime !== null ? (parsed.agentRuntime as { sessionId?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

export function roomMadeFor(metadata: string | undefined, sessionId: string): boolean {
  return runtimePart(metadata)?.sessionId === sessionId;
}

/** Whether a room belongs to a session of this API (its dispatcher or a session's token opened it). */
export function isSessionRoom(metadata: string | undefined): boolean {
  return runtimePart(metadata) !== undefined;
}
