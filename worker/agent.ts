import { defineAgent, type JobContext, type JobProcess } from '@livekit/agents';
import { workerDeps } from './deps.js';
import { runJob, type JobEvents } from './entry.js';
import { sinkEvents } from './metrics.js';

const events = sinkEvents();

/**
 * The agent definition LiveKit's agent server loads in every job process
 * (this file's path is handed to ServerOptions.agent).
 */
export default defineAgent({
  prewarm: async (_proc: JobProcess) => {
    // Connect before the first job arrives, so a job's first step is a cache read.
    await workerDeps();
    // The worker counts warm processes: it takes jobs once one is ready.
    events.warm();
  },
  entry: async (ctx: JobContext) => {
    // The worker hears that this process took a job once the job has its config (or ended without it):
    // the job's first step, the config lookup, has the process to itself.
    let reported = false;
    const received = () => {
      if (reported) return;
      reported = true;
      events.received(ctx.job.id);
    };
    const jobEvents: JobEvents = {
      ...events,
      onResolved: (tier, seconds) => {
        received();
        events.onResolved?.(tier, seconds);
      },
      onFailed: (reason) => {
        received();
        events.onFailed?.(reason);
      },
    };
    try {
      await runJob(ctx, await workerDeps(), jobEvents);
    } finally {
      received();
    }
  },
});
