import { z } from 'zod';

/**
 * Free-form JSON that callers attach (agent and session metadata). It is
 * stored in MongoDB as given, so keys MongoDB reads as operators or paths
 * (`$…`, dotted) and keys that reach object prototypes are refused, and the
 * size and depth are bounded.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_DEPTH = 16;

function badKey(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_DEPTH) return `nested deeper than ${MAX_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const v of value) {
      const bad = badKey(v, depth + 1);
      if (bad) return bad;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (FORBIDDEN_KEYS.has(k)) return `key "${k}" is not allowed`;
      if (k.startsWith('$') || k.includes('.')) return `key "${k}" may not start with $ or contain a dot`;
      const bad = badKey(v, depth + 1);
      if (bad) return bad;
    }
  }
  return undefined;
}

export function boundedJsonObject(maxBytes: number) {
  return z
    .record(z.string(), z.json())
    .superRefine((value, ctx) => {
      const bad = badKey(value);
      if (bad) {
        ctx.addIssue({ code: 'custom', message: bad });
        return;
      }
      if (Buffer.byteLength(JSON.stringify(value)) > maxBytes) {
        ctx.addIssue({ code: 'custom', message: `at most ${maxBytes} bytes of JSON` });
      }
    });
}

export const METADATA_MAX_BYTES = 8 * 1024;
export const metadataSchema = boundedJsonObject(METADATA_MAX_BYTES).describe('free JSON object, at most 8 KB');
