/**
 * The agent worker: `worker/main.ts dev|start` (or the built
 * dist/worker/main.js). Registers with LiveKit under AGENT_NAME for explicit
 * dispatch; any number of workers share the jobs.
 */
import { runService } from '../common/run-service.js';
import { startWorker } from './server.js';

const mode = process.argv[2];
if (mode !== 'dev' && mode !== 'start') {
  process.stderr.write('usage: worker/main.ts dev|start   (dev: development logging; start: production, drains running jobs on SIGTERM)\n');
  process.exit(2);
}
// In production a stop waits for the running conversations (as LiveKit's own CLI does, up to an hour).
await runService(() => startWorker(mode), mode === 'start' ? 3_600_000 : 30_000);
