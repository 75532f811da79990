import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { startCallbackWorker } from '../common/callbacks.js';
import { sessionRecords } from '../common/sessions/effects.js';
import { checkAgentJoined, type JoinCheck } from './join-check.js';
import { loadConfig, dispatcherEnv } from '../common/config.js';
import { UnavailableError, isMongoUnavailable } from '../common/errors.js';
import { livekitClients } from '../common/livekit.js';
import { acquireLock } from '../common/lock.js';
import { createLogger, type Logger } from '../common/logger.js';
import { agentModels } from '../common/models/agent.js';
import { connectMongo } from '../common/mongo.js';
import { dispatchBackoff, SESSIONS_QUEUE } from '../common/queue.js';
import { createRedis } from '../common/redis.js';
import { createResolver } from '../common/resolver-factory.js';
import type { SessionJob } from '../common/sessions/schema.js';
import { dispatchSession, type DispatchDeps } from './dispatch-session.js';
import { classifyLivekitError } from './livekit-errors.js';
import { dispatcherMetrics, serveMetrics } from './metrics.js';

export const JOIN_CHECKS_QUEUE = 'join-checks';

export interface RunningDispatcher {
  worker: Worker<SessionJob>;
  metricsPort: number;
  stop(): Promise<void>;
}

/**
 * The dispatcher: a BullMQ worker on the sessions queue. Any number of them
 * may share one queue; BullMQ hands each job to one at a time, and
 * dispatchSession makes a retry after any crash harmless.
 */
export async function startDispatcher(env: NodeJS.ProcessEnv = process.env, logger?: Logger): Promise<RunningDispatcher> {
  const config = loadConfig(dispatcherEnv, env);
  const log = logger ?? createLogger('dispatcher', config.LOG_LEVEL);
  const redis = createRedis(config.REDIS_URL, 'blocking');
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const mongo = await connectMongo(config.MONGODB_URI);
  const { store, slots, callbacks } = await sessionRecords(mongo, redis, config.QUEUE_PREFIX, log);
  const joinChecks = new Queue<JoinCheck>(JOIN_CHECKS_QUEUE, { connection: redis, prefix: config.QUEUE_PREFIX });
  const scheduleJoinCheck = (sessionId: string, round: number) =>
    joinChecks.add('check', { sessionId, round }, {
      jobId: `chk_${sessionId}_${round}`,
      delay: config.AGENT_JOIN_TIMEOUT * 1000,
      attempts: 5,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: true,
      removeOnFail: { age: 24 * 3600 },
    });
  const { resolver, close: closeResolver } = await createResolver(config, redis, await agentModels(mongo));
  const { rooms, dispatch } = livekitClients(config);

  const deps: DispatchDeps = {
    store,
    resolver,
    rooms,
    dispatch,
    agentName: config.AGENT_NAME,
    room: { emptyTimeout: config.ROOM_EMPTY_TIMEOUT, maxParticipants: config.ROOM_MAX_PARTICIPANTS },
    lock: (id) => acquireLock(redis, `${config.QUEUE_PREFIX}:dispatch-lock:${id}`, 30_000),
    slots,
  };

  const sessionQueue = new Queue<SessionJob>(SESSIONS_QUEUE, { connection: redis, prefix: config.QUEUE_PREFIX });
  const m = dispatcherMetrics([sessionQueue, joinChecks, callbacks]);
  for (const q of [sessionQueue, joinChecks]) q.on('error', (err) => log.debug({ queue: q.name, err: err.message }, 'queue error'));

  const processJob = async (job: Job<SessionJob>, token?: string) => {
    const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (job.attemptsMade === 0) m.queueWait.observe(Math.max(0, Date.now() - job.timestamp - (job.opts.delay ?? 0)) / 1000);
    const timer = m.dispatchDuration.startTimer();
    try {
      const outcome = await dispatchSession(job.data, deps, job.attemptsMade + 1);
      if (outcome.result !== 'busy' && outcome.result !== 'at-capacity') timer();
      m.outcomes.inc({ result: outcome.result, reason: outcome.result === 'failed' ? outcome.reason : outcome.result === 'skipped' ? outcome.status : '' });
      if (outcome.result === 'dispatched') m.stages.observe({ stage: 'dispatched' }, (Date.now() - Date.parse(job.data.requestedAt)) / 1000);
      if (outcome.result === 'busy' || outcome.result === 'at-capacity') {
        // Another process is dispatching this session, or its agent is at its cap: the session
        // stays queued and is looked at again shortly.
        await job.moveToDelayed(Date.now() + (outcome.result === 'busy' ? 1000 : 500), token);
        throw new DelayedError();
      }
      if (outcome.result === 'dispatched') await scheduleJoinCheck(job.data.sessionId, 0);
      log.debug({ sessionId: job.data.sessionId, ...outcome }, 'session processed');
      return outcome;
    } catch (err) {
      if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
      if (err instanceof UnavailableError || isMongoUnavailable(err)) {
        m.retries.inc({ reason: 'dependency_unavailable' });
        log.warn({ sessionId: job.data.sessionId, attempt: job.attemptsMade + 1 }, 'dependency unavailable; will retry');
        throw err;
      }
      const c = classifyLivekitError(err);
      if (c.kind === 'rate-limited') {
        m.retries.inc({ reason: 'livekit_rate_limited' });
        await worker.rateLimit(c.retryAfterMs);
        throw Worker.RateLimitError();
      }
      const reason = c.kind === 'permanent' ? c.reason : 'livekit_unavailable';
      if (c.kind === 'permanent' || lastTry) {
        await store.transition(job.data.sessionId, 'failed', { failureReason: reason }, job.data).catch(() => undefined);
        m.outcomes.inc({ result: 'failed', reason });
        log.warn({ sessionId: job.data.sessionId, reason }, 'session failed');
        throw new UnrecoverableError(reason);
      }
      m.retries.inc({ reason });
      // The record says a dispatch is under way and how many attempts it took so far.
      await store.transition(job.data.sessionId, 'dispatching', { attempts: job.attemptsMade + 1 }, job.data).catch(() => undefined);
      log.info({ sessionId: job.data.sessionId, attempt: job.attemptsMade + 1, err: (err as Error).message }, 'livekit error; will retry');
      throw err;
    }
  };

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

  const checker = new Worker<JoinCheck>(
    JOIN_CHECKS_QUEUE,
    async (job) => {
      const outcome = await checkAgentJoined(job.data, { store, dispatch, agentName: config.AGENT_NAME });
      m.redispatches.inc({ outcome });
      if (outcome === 'redispatched') await scheduleJoinCheck(job.data.sessionId, 1);
      log.info({ sessionId: job.data.sessionId, outcome }, 'agent join checked');
      return outcome;
    },
    { connection: createRedis(config.REDIS_URL, 'blocking'), prefix: config.QUEUE_PREFIX, concurrency: 8 },
  );
  checker.on('error', (err) => log.warn({ err: err.message }, 'join check worker error'));
  const callbackWorker = startCallbackWorker({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX, secret: config.CALLBACK_SECRET, logger: log });

  await Promise.all([worker.waitUntilReady(), checker.waitUntilReady(), callbackWorker.waitUntilReady()]);
  const metricsServer = await serveMetrics(m.registry, config.DISPATCHER_HOST, config.DISPATCHER_METRICS_PORT);
  log.info({ concurrency: config.DISPATCH_CONCURRENCY, agentName: config.AGENT_NAME }, 'dispatcher ready');

  return {
    worker,
    metricsPort: metricsServer.port,
    async stop() {
      await metricsServer.close();
      // Stops taking jobs and waits for the active ones to finish.
      await Promise.all([worker.close(), checker.close(), callbackWorker.close()]);
      await Promise.all([joinChecks.close(), callbacks.close(), sessionQueue.close()]);
      closeResolver();
      redis.disconnect();
      await mongo.close();
    },
  };
}
