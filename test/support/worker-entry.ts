/**
 * The agent worker as the tests run it: worker/server.ts's startWorker(), the
 * one worker/main.ts runs, with the same signal handling, in a process of its
 * own. Once it takes jobs it tells its parent over IPC (`WorkerReady`), so the
 * tests learn its id and ports without reading them from its log.
 * Usage: `node --import tsx test/support/worker-entry.ts dev|start`, spawned with an IPC channel.
 */
import { runService } from '../../common/run-service.js';
import { startWorker } from '../../worker/server.js';

export interface WorkerReady {
  type: 'ready';
  workerId: string;
  metricsPort: number;
  healthPort: number;
}

const mode = process.argv[2] === 'start' ? 'start' : 'dev';
// A test run that ends without stopping its worker (a crash, an interrupted run) takes the worker with it:
// stopped in order once it runs, ended at once while still starting (no SIGTERM handler yet).
const orphaned = () => process.kill(process.pid, 'SIGTERM');
// The parent may have gone while this module's imports loaded, before anyone listened.
if (process.send && !process.connected) orphaned();
else process.once('disconnect', orphaned);
await runService(
  async () => {
    const worker = await startWorker(mode);
    await worker.takingJobs;
    process.send?.({ type: 'ready', workerId: worker.id, metricsPort: worker.metricsPort, healthPort: worker.healthPort } satisfies WorkerReady);
    return worker;
  },
  mode === 'start' ? 3_600_000 : 30_000,
);
