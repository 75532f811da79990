import { ValidationError } from '../../common/errors.js';

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * JSON Merge Patch (RFC 7396): objects merge recursively, `null` removes a
 * field, anything else replaces. Keys that reach prototypes are refused
 * before they can be assigned.
 */
export function mergePatch(target: unknown, patch: unknown, path: string[] = []): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (FORBIDDEN.has(key)) throw new ValidationError([{ field: [...path, key].join('.'), message: 'field name not allowed' }]);
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value, [...path, key]);
  }
  return out;
}
