import type { Request } from 'express';
import { z } from 'zod';
import { parseOrThrow } from '../../common/validate.js';

/** Query strings: `limit` and `cursor` for every paginated list. */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(200).optional(),
});

export function parseQuery<T extends z.ZodType>(schema: T, req: Request): z.output<T> {
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req.query)) {
    // A repeated parameter is one error, not an array that slips through.
    flat[k] = Array.isArray(v) || (v !== null && typeof v === 'object') ? { repeated: true } : v;
  }
  return parseOrThrow(schema, flat, ['query']);
}

