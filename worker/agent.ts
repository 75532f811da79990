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
  },
  entry: async (ctx: JobContext) => {
    events.received();
    await runJob(ctx, await workerDeps(), events);
  },
});
