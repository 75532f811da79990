import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { AgentServer, initializeLogger } from '@livekit/agents';
import { agentModels, createResolver } from '../common/agents/index.js';
import { loadConfig, workerEnv, type WorkerConfig } from '../common/config.js';
import { connectMongo } from '../common/mongo.js';
import { freePort } from '../common/free-port.js';
import { createLogger } from '../common/logger.js';
import { setRtcLogLevel } from '../common/rtc-log.js';
import { createRedis, type Redis, redisReady } from '../common/redis.js';
import { Placements } from '../common/sessions/index.js';
import { WorkerCapacity } from '../common/workers/capacity.js';
import { configuredProviders, missingProvidersWarning } from '../common/workers/providers.js';
import { AutomaticRooms } from './automatic-rooms.js';
import { CpuGuard } from './cpu-guard.js';
import { jobRequestHandler } from './job-request.js';
import { startMetricsServer } from './metrics.js';
import { WorkerPresence } from './presence.js';
import { serverOptions } from './server-options.js';
import { workerSizing, type Sizing } from './sizing.js';

export type WorkerMode = 'dev' | 'start';

/** The capacity name of automatic workers: outside AGENT_NAME's alphabet, so no dispatcher counts their slots. */
const AUTOMATIC_CAPACITY_NAME = '(automatic)';

/** The agent registry as an automatic worker's job requests read it (through the same config cache as its jobs). */
async function automaticRegistry(config: WorkerConfig, redis: Redis) {
  const mongo = await connectMongo(config.MONGODB_URI);
  const { resolver, close } = await createResolver(config, redis, await agentModels(mongo));
  return {
    rooms: new AutomaticRooms(resolver),
    async close() {
      close();
      await mongo.close();
    },
  };
}

export interface RunningWorker {
  id: string;
  sizing: Sizing;
  metricsPort: number;
  healthPort: number;
  /** Resolves once a job process is warm and the worker takes jobs (registered is not enough: it has no free slot before). */
  takingJobs: Promise<void>;
  /** Stops taking jobs; in `start` mode waits for the running ones to end (as LiveKit's CLI does), then closes. */
  stop(): Promise<void>;
}

/**
 * The agent worker: a LiveKit agent server registered under AGENT_NAME for
 * explicit dispatch (or, with AGENT_DISPATCH=automatic, without a name, for
 * the rooms users open themselves: worker/automatic-rooms.ts), whose jobs run in processes of their own (worker/agent.ts).
 * Around it, this process counts its jobs against its slots, answers job
 * offers (worker/job-request.ts) and beats its free slots into Redis for the
 * dispatchers (worker/presence.ts). `dev` logs pretty, `start` is production.
 * Reads process.env: the job processes it forks inherit it.
 */
export async function startWorker(mode: WorkerMode): Promise<RunningWorker> {
  const config = loadConfig(workerEnv);
  // The agents library knows no "silent".
  const level = config.LOG_LEVEL === 'silent' ? 'fatal' : config.LOG_LEVEL;
  initializeLogger({ pretty: mode === 'dev', level });
  setRtcLogLevel(level);
  if (mode === 'dev') process.env.LIVEKIT_DEV_MODE = '1';
  const log = createLogger('worker', level);
  const id = `${os.hostname()}-${randomBytes(4).toString('hex')}`;

  const redis = createRedis(config.REDIS_URL, 'fail-fast');
  await redisReady(redis);
  const automatic = config.AGENT_DISPATCH === 'automatic';
  // An automatic worker's slots are not for the dispatchers' explicit sessions: it reports them under a
  // name no AGENT_NAME can have, and answers room offers with the agent registry (worker/automatic-rooms.ts).
  const capacity = new WorkerCapacity(redis, config.QUEUE_PREFIX, automatic ? AUTOMATIC_CAPACITY_NAME : config.AGENT_NAME);
  const registry = automatic ? await automaticRegistry(config, redis) : undefined;
  const placements = new Placements(redis, config.QUEUE_PREFIX, config.AGENT_NAME);
  const sizing = workerSizing(config);
  const guard = new CpuGuard(config.WORKER_LOAD_THRESHOLD, (on) => {
    log.warn({ cpu: guard.average, threshold: config.WORKER_LOAD_THRESHOLD }, on ? 'CPU guard on: taking no new jobs' : 'CPU guard off: taking jobs again');
    presence.changed();
  });
  const providers = configuredProviders(config);
  const missing = missingProvidersWarning(providers);
  if (missing) log.warn({ providers }, missing);
  const presence = new WorkerPresence(id, { capacity, sizing, guard, log, providers });
  // Before the agent server forks job processes: they inherit where to report.
  const metrics = await startMetricsServer(config.WORKER_HOST, config.WORKER_METRICS_PORT, (e) => presence.onJobEvent(e));
  log.info({ metricsPort: metrics.port }, 'worker metrics listening');
  const healthPort = config.WORKER_HEALTH_PORT || (await freePort(config.WORKER_HOST));

  const server = new AgentServer(
    serverOptions(config, healthPort, {
      requestFunc: jobRequestHandler({
        presence,
        placements,
        log,
        ...(registry ? { automatic: registry.rooms } : {}),
        onAccepted: (seconds) => metrics.apply({ type: 'stage', stage: 'job_accepted', seconds }),
      }),
      load: () => presence.busy / sizing.capacity,
      idleProcesses: sizing.idleProcesses,
      production: mode === 'start',
    }),
  );
  const registered = new Promise<void>((resolve) => server.event.once('worker_registered', () => resolve()));
  const running = server.run();
  await Promise.race([
    registered,
    running.then(() => {
      throw new Error('the agent server stopped before it registered with LiveKit');
    }),
  ]);
  running.catch((err: Error) => {
    log.fatal({ err: err.message }, 'agent server stopped');
    process.exit(1);
  });
  guard.start();
  presence.start(server);
  log.info(
    { workerId: id, slots: sizing.capacity, warmProcesses: sizing.idleProcesses, cpuGuard: config.WORKER_LOAD_THRESHOLD, mode, dispatch: config.AGENT_DISPATCH },
    'worker registered; job slots reported once a job process is warm',
  );

  let stopping: Promise<void> | undefined;
  return {
    id,
    sizing,
    metricsPort: metrics.port,
    healthPort,
    takingJobs: presence.takingJobs,
    stop() {
      stopping ??= (async () => {
        presence.drain();
        if (mode === 'start') await server.drain().catch((err: Error) => log.warn({ err: err.message }, 'drain did not finish'));
        await server.close();
        await presence.stop();
        guard.stop();
        await metrics.close();
        await registry?.close();
        redis.disconnect();
      })();
      return stopping;
    },
  };
}
