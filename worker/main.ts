/**
 * The agent worker: `node worker/main.ts dev|start` (or the built
 * dist/worker/main.js). Registers with LiveKit under AGENT_NAME for explicit
 * dispatch; any number of workers share the jobs.
 */
import { cli } from '@livekit/agents';
import { loadConfigOrExit, workerEnv } from '../common/config.js';
import { serverOptions } from './server-options.js';

const config = loadConfigOrExit(workerEnv);
// The agents CLI reads LOG_LEVEL too and knows no "silent".
if (process.env.LOG_LEVEL === 'silent') process.env.LOG_LEVEL = 'fatal';
cli.runApp(serverOptions(config));
