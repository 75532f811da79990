import type { SessionJob } from './schema.js';

/**
 * The dispatch metadata the worker reads: the caller's metadata with ours last,
 * so a caller cannot change which agent runs or which session it reports to.
 */
export function dispatchMetadata(job: Pick<SessionJob, 'agentId' | 'sessionId' | 'metadata' | 'requestedAt'>, configVersion: number, generation = 0): string {
  return JSON.stringify({ ...job.metadata, agentId: job.agentId, sessionId: job.sessionId, configVersion, requestedAt: job.requestedAt, ...(generation ? { generation } : {}) });
}

/** A metadata's `generation` field as a placement generation (common/sessions/placement.ts); 0 when it is none. */
export function asGeneration(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
}

/** The placement generation a dispatch was made for. */
export function generationOf(metadata: string): number {
  try {
    return asGeneration((JSON.parse(metadata) as { generation?: unknown }).generation);
  } catch {
    return 0;
  }
}

export function sessionIdOf(metadata: string): string | undefined {
  try {
    const v = (JSON.parse(metadata) as { sessionId?: unknown }).sessionId;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
