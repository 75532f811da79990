import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { agentModels, AgentStore, createResolver } from '../common/agents/index.js';
import { apiEnv, loadConfig, type ApiConfig } from '../common/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { connectMongo } from '../common/mongo.js';
import { createRedis, redisReady } from '../common/redis.js';
import { livekitClients } from '../common/livekit.js';
import { checksQueue, enqueueRecovery, sessionsQueue } from '../common/queue.js';
import { callbacksQueue } from '../common/callbacks.js';
import { queuesBoard } from './admin/queues-board.js';
import { WorkerCapacity } from '../common/workers/capacity.js';
import { sessionRecords } from '../common/sessions/index.js';
import { AgentRegistry } from './agents/registry.js';
import { webhookRoutes } from './livekit/webhook-routes.js';
import { IdempotencyKeys } from './sessions/idempotency.js';
import { SessionService } from './sessions/service.js';
import { createApp } from './app.js';
import { dashboardSummary } from './dashboard/summary.js';
import { apiMetrics } from './http/metrics.js';

export interface RunningApi {
  url: string;
  port: number;
  config: ApiConfig;
  stop(): Promise<void>;
}

/** Connects, listens, and returns a handle whose `stop` closes everything it opened. */
export async function startApi(env: NodeJS.ProcessEnv = process.env, logger?: Logger): Promise<RunningApi> {
  const config = loadConfig(apiEnv, env);
  const log = logger ?? createLogger('api', config.LOG_LEVEL);
  const redis = createRedis(config.REDIS_URL, 'fail-fast');
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const mongo = await connectMongo(config.MONGODB_URI);
  const models = await agentModels(mongo);
  const registry = new AgentRegistry({ store: new AgentStore(models), redis, prefix: config.QUEUE_PREFIX, cacheTtl: config.CONFIG_CACHE_TTL });

  const { resolver, close: closeResolver } = await createResolver(config, redis, models);
  const { store, history, callbacks, placements } = await sessionRecords(mongo, redis, config.QUEUE_PREFIX, log, config.AGENT_NAME, {
    hotTtlSeconds: config.SESSION_HOT_TTL,
  });
  history.start();
  const capacity = config.DISPATCH_MODE === 'capacity' ? new WorkerCapacity(redis, config.QUEUE_PREFIX, config.AGENT_NAME) : undefined;
  const checks = checksQueue(redis, config.QUEUE_PREFIX);
  checks.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const queue = sessionsQueue(redis, config.QUEUE_PREFIX);
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const { rooms, dispatch } = livekitClients(config);
  const metrics = apiMetrics();
  const sessions = new SessionService({
    config, queue, store, resolver, callbacks, log, rooms, dispatch, placements, capacity,
    metrics: {
      accepted: (agentId, seconds) => {
        metrics.sessionsRequested.inc({ agent_id: agentId });
        metrics.stages.observe({ stage: 'accepted' }, seconds);
      },
      batch: (size) => metrics.batchSize.observe(size),
    },
  });

  const webhooks = webhookRoutes({
    store,
    placements,
    rooms,
    recover: (r) => enqueueRecovery(checks, r),
    apiKey: config.LIVEKIT_API_KEY,
    apiSecret: config.LIVEKIT_API_SECRET,
    logger: log,
    redis,
    prefix: config.QUEUE_PREFIX,
    // The agent joined: the last stage of a session's start, from its request time.
    onAgentJoined: async (sessionId) => {
      const s = await store.get(sessionId);
      if (s) metrics.stages.observe({ stage: 'agent_joined' }, (Date.now() - new Date(s.requestedAt).getTime()) / 1000);
    },
  });
  const idempotency = new IdempotencyKeys(redis, config.QUEUE_PREFIX, config.IDEMPOTENCY_TTL, log);
  // Every request asks it once: commands issued in the same tick go out as one write.
  const limits = createRedis(config.REDIS_URL, 'fail-fast', { enableAutoPipelining: true });

  // The board reads through queues of its own, so it cannot disturb the ones the service adds jobs to.
  const boardQueues = [sessionsQueue(redis, config.QUEUE_PREFIX), checksQueue(redis, config.QUEUE_PREFIX), callbacksQueue(redis, config.QUEUE_PREFIX)];
  for (const q of boardQueues) q.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const app = createApp({ config, logger: log, redis, limits, mongo, registry, sessions, idempotency, webhooks, metrics, capacity,
    summary: () => dashboardSummary(store, queue),
    queuesBoard: queuesBoard(boardQueues),
  });
  // Fail-fast clients refuse commands until connected: without this wait the first
  // requests after start would meet a "down" Redis (and the rate limiter would count
  // them in its in-process fallback instead of the shared window).
  await Promise.all([redisReady(redis), redisReady(limits)]);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.PORT, config.HOST, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  log.info({ port }, 'api listening');

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    config,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await history.stop();
      await queue.close();
      await checks.close();
      await callbacks.close();
      await Promise.all(boardQueues.map((q) => q.close()));
      closeResolver();
      redis.disconnect();
      limits.disconnect();
      await mongo.close();
    },
  };
}
