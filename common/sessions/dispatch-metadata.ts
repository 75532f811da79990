import { z } from 'zod';
import type { SessionJob } from './schema.js';

const generationSchema = z.number().int().min(0);

/**
 * The dispatch metadata: what the dispatcher (or a session's join token) hands
 * the worker with a job, beside the caller's own metadata fields. Built by
 * `dispatchMetadata`, read by `parseDispatchMetadata` (worker, dispatcher,
 * tests). Reading is lenient: a field that is missing or of the wrong type is
 * left out rather than failing the job, whose agent can then still come from
 * the room name (`agent-{id}-room`), as in the original deployment.
 */
export const dispatchMetadataSchema = z.looseObject({
  agentId: z.union([z.string(), z.number().transform(String)]).optional().catch(undefined),
  sessionId: z.string().optional().catch(undefined),
  configVersion: z.number().int().min(1).optional().catch(undefined),
  requestedAt: z.iso.datetime({ offset: true }).optional().catch(undefined),
  generation: generationSchema.optional().catch(undefined),
});
export type DispatchMetadata = z.output<typeof dispatchMetadataSchema>;

/**
 * The dispatch metadata the worker reads: the caller's metadata with ours last,
 * so a caller cannot change which agent runs or which session it reports to.
 */
export function dispatchMetadata(job: Pick<SessionJob, 'agentId' | 'sessionId' | 'metadata' | 'requestedAt'>, configVersion: number, generation = 0): string {
  const ours: DispatchMetadata = { agentId: job.agentId, sessionId: job.sessionId, configVersion, requestedAt: job.requestedAt, ...(generation ? { generation } : {}) };
  return JSON.stringify({ ...job.metadata, ...ours });
}

/** A dispatch's metadata as far as it is ours; {} when it is not a JSON object. */
export function parseDispatchMetadata(metadata: string | undefined): DispatchMetadata {
  let raw: unknown;
  try {
    raw = metadata ? JSON.parse(metadata) : {};
  } catch {
    return {};
  }
  const parsed = dispatchMetadataSchema.safeParse(raw);
  return parsed.success ? parsed.data : {};
}

/** The placement generation a dispatch was made for. */
export function generationOf(metadata: string): number {
  return parseDispatchMetadata(metadata).generation ?? 0;
}

export function sessionIdOf(metadata: string): string | undefined {
  return parseDispatchMetadata(metadata).sessionId;
}
