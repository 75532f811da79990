/**
 * What to do with an error from LiveKit's API: try again later, slow down,
 * or give up. livekit-server-sdk throws ServerError with the HTTP `status`
 * and the Twirp `code`; network failures arrive as plain errors.
 */
export type ErrorClass = { kind: 'transient' } | { kind: 'rate-limited'; retryAfterMs: number } | { kind: 'permanent'; reason: string };

const TRANSIENT_CODES = new Set(['unavailable', 'internal', 'deadline_exceeded', 'unknown', 'aborted', 'canceled']);

export function classifyLivekitError(err: unknown): ErrorClass {
  const e = err as { status?: number; code?: string; metadata?: Record<string, string> };
  if (typeof e?.status !== 'number') return { kind: 'transient' }; // network, timeout, refused
  if (e.status === 429 || e.code === 'resource_exhausted') {
    const after = Number(e.metadata?.['retry-after'] ?? e.metadata?.retry_after);
    return { kind: 'rate-limited', retryAfterMs: Number.isFinite(after) && after > 0 ? after * 1000 : 1000 };
  }
  if (e.status >= 500 || (e.code && TRANSIENT_CODES.has(e.code))) return { kind: 'transient' };
  return { kind: 'permanent', reason: `livekit_${e.code ?? e.status}` };
}
