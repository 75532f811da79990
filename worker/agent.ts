import { defineAgent, type JobContext, type JobProcess } from '@livekit/agents';
import { workerDeps } from './deps.js';
import { runJob } from './entry.js';
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
    events.received(ctx.job.id);
    await runJob(ctx, await workerDeps(), events);
  },
});
