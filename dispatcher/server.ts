import { Worker } from 'bullmq';
import { startCallbackWorker } from '../common/callbacks.js';
import { dispatcherEnv, loadConfig } from '../common/config.js';
import { livekitClients } from '../common/livekit.js';
import { acquireLock } from '../common/lock.js';
import { createLogger, type Logger } from '../common/logger.js';
import { agentModels, createResolver } from '../common/agents/index.js';
import { connectMongo } from '../common/mongo.js';
import {
  CHECKS_QUEUE,
  checkJobOptions,
  checksQueue,
  dispatchBackoff,
  enqueueRecovery,
  placementJobOptions,
  SESSIONS_QUEUE,
  sessionsQueue,
  type CheckJobs,
  type CheckName,
  type Recovery,
} from '../common/queue.js';
import { createRedis } from '../common/redis.js';
import { Placements, type SessionJob, sessionRecords } from '../common/sessions/index.js';
import { HEARTBEAT_INTERVAL_MS, WorkerCapacity } from '../common/workers/capacity.js';
import { CapacityGate } from './capacity-gate.js';
import type { DispatchDeps } from './dispatch-session.js';
import { dispatcherMetrics, serveMetrics } from './metrics.js';
import { sessionJobProcessor } from './session-job-processor.js';
import { checkAgentJoined, checkPlacement, placementCheckDelay, recoverSession, type PlacementDeps } from './placement-checks.js';

export interface RunningDispatcher {
  worker: Worker<SessionJob>;
  metricsPort: number;
  stop(): Promise<void>;
}

/**
 * The dispatcher: a BullMQ worker on the sessions queue. Any number of them
 * may share one queue; BullMQ hands each job to one at a time, and
 * dispatchSession makes a retry after any crash harmless. Beside it: the
 * follow-ups of each dispatch (placement, join, recovery checks) and a sweep
 * for workers whose heartbeat lapsed.
 */
export async function startDispatcher(env: NodeJS.ProcessEnv = process.env, logger?: Logger): Promise<RunningDispatcher> {
  const config = loadConfig(dispatcherEnv, env);
  const log = logger ?? createLogger('dispatcher', config.LOG_LEVEL);
  const capacityMode = config.DISPATCH_MODE === 'capacity';
  const redis = createRedis(config.REDIS_URL, 'blocking');
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const mongo = await connectMongo(config.MONGODB_URI);
  const { store, slots, callbacks, history } = await sessionRecords(mongo, redis, config.QUEUE_PREFIX, log, config.AGENT_NAME, {
    hotTtlSeconds: config.SESSION_HOT_TTL,
  });
  history.start();
  const { resolver, close: closeResolver } = await createResolver(config, redis, await agentModels(mongo));
  const { rooms, dispatch } = livekitClients(config);
  const capacity = new WorkerCapacity(redis, config.QUEUE_PREFIX, config.AGENT_NAME);
  const placements = new Placements(redis, config.QUEUE_PREFIX, config.AGENT_NAME);
  const gate = capacityMode ? new CapacityGate(capacity, createRedis(config.REDIS_URL, 'blocking'), log) : undefined;
  await gate?.start();

  const sessionQueue = sessionsQueue(redis, config.QUEUE_PREFIX);
  const checks = checksQueue(redis, config.QUEUE_PREFIX);
  const m = dispatcherMetrics([sessionQueue, checks, callbacks], capacity, () => store.historyLag());
  for (const q of [sessionQueue, checks]) q.on('error', (err) => log.debug({ queue: q.name, err: err.message }, 'queue error'));

  const requeue = async (job: SessionJob, reason: string) => {
    m.placements.inc({ reason });
    await sessionQueue.add('session', job, placementJobOptions(job, config.DISPATCH_ATTEMPTS));
  };
  const checkDeps = (reason: string): PlacementDeps => ({
    store,
    placements,
    capacity,
    rooms,
    dispatch,
    agentName: config.AGENT_NAME,
    claims: capacityMode,
    requeue: (job) => requeue(job, reason),
  });
  const scheduleJoinCheck = (sessionId: string, generation: number, delay = config.AGENT_JOIN_TIMEOUT * 1000, wait = 0) =>
    checks.add('join', { sessionId, generation, wait }, checkJobOptions(`chk_${sessionId}_${generation}_${wait}`, delay));
  /** After a dispatch: in capacity mode, look whether a worker took the job; else wait for the agent. */
  const followUp = (job: SessionJob) => {
    const gen = job.generation ?? 0;
    return capacityMode
      ? checks.add('placement', job, checkJobOptions(`plc_${job.sessionId}_${gen}`, placementCheckDelay(gen)))
      : scheduleJoinCheck(job.sessionId, gen);
  };

  const deps: DispatchDeps = {
    store,
    resolver,
    rooms,
    dispatch,
    agentName: config.AGENT_NAME,
    room: { emptyTimeout: config.ROOM_EMPTY_TIMEOUT, maxParticipants: config.ROOM_MAX_PARTICIPANTS },
    lock: (id) => acquireLock(redis, `${config.QUEUE_PREFIX}:dispatch-lock:${id}`, 30_000),
    slots,
    placements,
    ...(gate ? { gate, onCapacityWait: (seconds: number) => m.capacityWait.observe(seconds) } : {}),
  };

  const processJob = sessionJobProcessor({
    dispatch: deps,
    store,
    metrics: m,
    log,
    followUp,
    rateLimit: (ms) => worker.rateLimit(ms),
  });

  const worker = new Worker<SessionJob>(SESSIONS_QUEUE, processJob, {
    connection: createRedis(config.REDIS_URL, 'blocking'),
    prefix: config.QUEUE_PREFIX,
    concurrency: config.DISPATCH_CONCURRENCY,
    limiter: { max: config.DISPATCH_RATE_MAX, duration: config.DISPATCH_RATE_DURATION_MS },
    settings: { backoffStrategy: (attemptsMade: number) => dispatchBackoff(attemptsMade) },
    // A job whose dispatcher died is handed to another after this long.
    stalledInterval: 5_000,
    lockDuration: 15_000,
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));

  const checker = new Worker<CheckJobs[CheckName], unknown, CheckName>(
    CHECKS_QUEUE,
    async (job) => {
      switch (job.name) {
        case 'placement': {
          const data = job.data as SessionJob;
          const outcome = await checkPlacement(data, checkDeps('not_taken'));
          if (outcome === 'taken') await scheduleJoinCheck(data.sessionId, data.generation ?? 0);
          if (outcome === 'placed-again') log.info({ sessionId: data.sessionId, generation: data.generation ?? 0 }, 'no worker took the job: placing it again');
          return outcome;
        }
        case 'join': {
          const data = job.data as CheckJobs['join'];
          const outcome = await checkAgentJoined(data, checkDeps('join_timeout'), config.AGENT_JOIN_TIMEOUT * 1000);
          if (typeof outcome === 'object') {
            // The job is on its way (its worker is starting a process for it): look again then.
            await scheduleJoinCheck(data.sessionId, data.generation, outcome.later, (data.wait ?? 0) + 1);
            return 'waiting';
          }
          m.redispatches.inc({ outcome });
          log.info({ sessionId: data.sessionId, outcome }, 'agent join checked');
          return outcome;
        }
        case 'recover': {
          const data = job.data as Recovery;
          const outcome = await recoverSession(data, checkDeps(data.workerId ? 'worker_lost' : 'agent_left'));
          m.recoveries.inc({ outcome: outcome.replace('-', '_') });
          log.info({ sessionId: data.sessionId, workerId: data.workerId, jobId: data.jobId, outcome }, 'session recovery');
          return outcome;
        }
      }
    },
    { connection: createRedis(config.REDIS_URL, 'blocking'), prefix: config.QUEUE_PREFIX, concurrency: 16 },
  );
  checker.on('error', (err) => log.warn({ err: err.message }, 'check worker error'));
  const callbackWorker = startCallbackWorker({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX, secret: config.CALLBACK_SECRET, logger: log });

  // Workers whose heartbeat lapsed: their capacity already stopped counting; their sessions are recovered.
  let sweeping = false;
  let sweepWarnedAt = 0;
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    void (async () => {
      for (const workerId of await capacity.lapsed()) {
        const held = await capacity.held(workerId);
        for (const sessionId of held) await enqueueRecovery(checks, { sessionId, workerId });
        if ((await capacity.forget(workerId)) !== undefined) log.warn({ workerId, sessions: held.length }, 'worker lost: recovering its sessions');
      }
    })()
      .catch((err: Error) => {
        // A failing sweep leaves dead workers' sessions to LiveKit's ~20 s participant timeout: worth a warning, not one per beat.
        if (Date.now() - sweepWarnedAt > 10_000) log.warn({ err: err.message }, 'worker sweep failed');
        sweepWarnedAt = Date.now();
      })
      .finally(() => (sweeping = false));
  }, HEARTBEAT_INTERVAL_MS);

  await Promise.all([worker.waitUntilReady(), checker.waitUntilReady(), callbackWorker.waitUntilReady()]);
  const metricsServer = await serveMetrics(m.registry, config.DISPATCHER_HOST, config.DISPATCHER_METRICS_PORT);
  log.info({ concurrency: config.DISPATCH_CONCURRENCY, agentName: config.AGENT_NAME, mode: config.DISPATCH_MODE }, 'dispatcher ready');

  return {
    worker,
    metricsPort: metricsServer.port,
    async stop() {
      clearInterval(sweep);
      await metricsServer.close();
      // Sessions waiting for a slot go back to the queue; then stop taking jobs and finish the active ones.
      await gate?.close();
      await Promise.all([worker.close(), checker.close(), callbackWorker.close()]);
      await Promise.all([checks.close(), callbacks.close(), sessionQueue.close()]);
      await history.stop();
      closeResolver();
      redis.disconnect();
      await mongo.close();
    },
  };
}
