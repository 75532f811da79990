import { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import { UnavailableError } from './errors.js';

export interface LivekitSettings {
  LIVEKIT_URL: string;
  LIVEKIT_API_KEY: string;
  LIVEKIT_API_SECRET: string;
}

/** livekit-server-sdk speaks Twirp over HTTP(S); the same host serves ws(s) to clients. */
export function livekitHttpUrl(url: string): string {
  return url.replace(/^ws(s?):\/\//, 'http$1://');
}

export function livekitClients(s: LivekitSettings) {
  const host = livekitHttpUrl(s.LIVEKIT_URL);
  return {
    rooms: new RoomServiceClient(host, s.LIVEKIT_API_KEY, s.LIVEKIT_API_SECRET),
    dispatch: new AgentDispatchClient(host, s.LIVEKIT_API_KEY, s.LIVEKIT_API_SECRET),
  };
}

/** LiveKit answered that the room (or dispatch, or participant) does not exist. */
export function isNotFound(err: unknown): boolean {
  const e = err as { status?: number; code?: string } | undefined;
  return e?.status === 404 || e?.code === 'not_found';
}

/**
 * What to do with an error from LiveKit's API: try again later, slow down,
 * or give up. livekit-server-sdk throws ServerError with the HTTP `status`
 * and the Twirp `code`; network failures arrive as plain errors.
 */
export type LivekitErrorClass = { kind: 'transient' } | { kind: 'rate-limited'; retryAfterMs: number } | { kind: 'permanent'; reason: string };

const TRANSIENT_CODES = new Set(['unavailable', 'internal', 'deadline_exceeded', 'unknown', 'aborted', 'canceled']);

export function classifyLivekitError(err: unknown): LivekitErrorClass {
  const e = err as { status?: number; code?: string; metadata?: Record<string, string> };
  if (typeof e?.status !== 'number') return { kind: 'transient' }; // network, timeout, refused
  if (e.status === 429 || e.code === 'resource_exhausted') {
    const after = Number(e.metadata?.['retry-after'] ?? e.metadata?.retry_after);
    return { kind: 'rate-limited', retryAfterMs: Number.isFinite(after) && after > 0 ? after * 1000 : 1000 };
  }
  if (e.status >= 500 || (e.code && TRANSIENT_CODES.has(e.code))) return { kind: 'transient' };
  return { kind: 'permanent', reason: `livekit_${e.code ?? e.status}` };
}

/**
 * A LiveKit call that removes something (a room, a dispatch) which may be gone
 * already: gone counts as done. LiveKit unreachable, failing or rate limiting
 * is an outage the caller may retry (UnavailableError); a refusal is thrown as
 * it came.
 */
export async function doneIfGone(removal: Promise<unknown>): Promise<void> {
  try {
    await removal;
  } catch (err) {
    if (isNotFound(err)) return;
    if (classifyLivekitError(err).kind !== 'permanent') throw new UnavailableError('livekit', { cause: err });
    throw err;
  }
}

/** ParticipantInfo.Kind.AGENT in LiveKit's protocol (livekit-server-sdk does not export the enum). */
export const AGENT_KIND = 4;

/** The people (not agents, avatars included) in a room now; none when the room is gone. */
export async function usersIn(rooms: RoomServiceClient, room: string) {
  try {
    return (await rooms.listParticipants(room)).filter((p) => p.kind !== AGENT_KIND);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
