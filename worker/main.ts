/**
 * The agent worker: `node worker/main.ts dev|start` (or the built
 * dist/worker/main.js). Registers with LiveKit under AGENT_NAME for explicit
 * dispatch; any number of workers share the jobs.
 */
import { cli } from '@livekit/agents';
import { loadConfigOrExit, workerEnv } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { startMetricsServer } from './metrics.js';
import { freePort, serverOptions } from './server-options.js';

const config = loadConfigOrExit(workerEnv);
// The agents CLI reads LOG_LEVEL too and knows no "silent".
if (process.env.LOG_LEVEL === 'silent') process.env.LOG_LEVEL = 'fatal';
// Before the agent server forks job processes: they inherit where to report.
const metrics = await startMetricsServer(config.WORKER_HOST, config.WORKER_METRICS_PORT);
createLogger('worker', config.LOG_LEVEL === 'silent' ? 'fatal' : config.LOG_LEVEL).info({ metricsPort: metrics.port }, 'worker metrics listening');
cli.runApp(serverOptions(config, config.WORKER_HEALTH_PORT || (await freePort(config.WORKER_HOST))));
