import type { z } from 'zod';
import { ValidationError, type FieldError } from './errors.js';

/** zod issues as field errors: `llm.model`, `sessions.3.agentId`. */
export function fieldErrors(error: z.ZodError, prefix: (string | number)[] = []): FieldError[] {
  return error.issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ field: [...path, k].join('.'), message: 'unknown field' }));
    }
    return [{ field: path.join('.'), message: issue.message }];
  });
}

/** Parses or throws a ValidationError naming every bad field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, prefix: (string | number)[] = []): z.output<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(fieldErrors(r.error, prefix));
  return r.data;
}
