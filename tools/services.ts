/**
 * `npm run services` — start whatever of Redis, MongoDB and LiveKit does not
 * answer at its configured address; `npm run services:down` stops only what
 * an earlier `up` started (by recorded pid).
 */
import { DEV_LIVEKIT_API_SECRET } from '../common/config.js';
import { LOG_DIR } from './lib/paths.js';
import { servicesDown, servicesUp, stackEnv } from './lib/services.js';

const command = process.argv[2] ?? 'up';

try {
  if (command === 'up') {
    const env = stackEnv();
    await servicesUp(env);
    console.log(`\nlogs: ${LOG_DIR}\nconnect with:`);
    for (const [k, v] of Object.entries(env)) {
      // Only the well-known development secret is printed; a real one stays where it was set.
      const shown = k === 'LIVEKIT_API_SECRET' && v !== DEV_LIVEKIT_API_SECRET ? '<as set in your environment>' : v;
      console.log(`  ${k}=${shown}`);
    }
  } else if (command === 'down') {
    await servicesDown();
  } else {
    console.error('usage: services.ts up|down');
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
