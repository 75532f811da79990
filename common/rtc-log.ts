import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Sets the level of @livekit/rtc-node's own logger ("lk-rtc"), which logs at
 * debug unless NODE_ENV=production and is not exported: it is reached through
 * the package's CommonJS build, the one module instance every import shares.
 */
export function setRtcLogLevel(level: string): void {
  const require = createRequire(import.meta.url);
  try {
    const file = path.join(path.dirname(require.resolve('@livekit/rtc-node')), 'log.cjs');
    const mod = require(file) as { log?: { level: string } };
    if (mod.log) mod.log.level = level === 'silent' ? 'silent' : level;
  } catch {
    // A layout this does not know: the library's default level stands.
  }
}
