import { randomBytes } from 'node:crypto';
import { loadConfig, sharedEnv } from '../../common/config.js';

/** The local stack's settings, as `npm test` brought it up. */
export const stack = loadConfig(sharedEnv, { ...process.env, NODE_ENV: 'test' });

/** A name no other test uses: each test gets its own database, queue and rooms. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A MongoDB URI on the stack's server with a database of its own. */
export function mongoUri(db: string, base = stack.MONGODB_URI): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}
