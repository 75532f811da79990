/**
 * Writes .env.example from the services' zod env schemas, so the file and the
 * code cannot drift: `npm run env:example` (a test checks it is current).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { apiEnv, dispatcherEnv, sharedEnv, workerEnv } from '../common/config.js';
import { ROOT } from './lib/paths.js';

const sections: [string, z.ZodRawShape][] = [
  ['shared by every service', sharedEnv],
  ['api', apiEnv],
  ['dispatcher', dispatcherEnv],
  ['worker', workerEnv],
];

export function renderEnvExample(): string {
  const seen = new Set<string>();
  const out = ['# Every setting of Agent Runtime, with its default. Copy to .env or export what you change.', ''];
  for (const [title, shape] of sections) {
    const keys = Object.keys(shape).filter((k) => !seen.has(k));
    if (keys.length === 0) continue;
    out.push(`# --- ${title} ---`);
    for (const key of keys) {
      seen.add(key);
      const schema = shape[key] as z.ZodType;
      const parsed = schema.safeParse(undefined);
      const value = parsed.success ? (Array.isArray(parsed.data) ? parsed.data.join(',') : String(parsed.data ?? '')) : '';
      out.push(`# ${schema.description ?? ''}`.trimEnd(), `${key}=${value}`);
    }
    out.push('');
  }
  return out.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(ROOT, 'tools', 'env-example.ts')) {
  writeFileSync(path.join(ROOT, '.env.example'), renderEnvExample());
  console.log('wrote .env.example');
}
