import express, { type Express, type Router } from 'express';
import helmet from 'helmet';
import { adminApiKeys, type ApiConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { Connection } from '../common/mongo.js';
import type { Redis } from '../common/redis.js';
import type { WorkerCapacity } from '../common/workers/capacity.js';
import { agentRoutes } from './agents/routes.js';
import type { AgentRegistry } from './agents/registry.js';
import { batchRoutes } from './batches/routes.js';
import type { IdempotencyKeys } from './sessions/idempotency.js';
import { sessionRoutes } from './sessions/routes.js';
import type { SessionService } from './sessions/service.js';
import { requireAdminKey, requireApiKey } from './http/auth.js';
import { ProviderCheck } from './agents/provider-check.js';
import { docsPage } from './docs/docs-page.js';
import { playgroundRoutes } from './playground/routes.js';
import { QUEUES_BOARD_PATH } from './admin/queues-board.js';
import type { ApiMetrics } from './http/metrics.js';
import { jsonBody } from './http/json-body.js';
import { rateLimit } from './http/rate-limit.js';
import { openApiDocument } from './openapi.js';
import { errorHandler, sendProblem } from './http/problem.js';

export interface ApiDeps {
  config: ApiConfig;
  logger: Logger;
  redis: Redis;
  /** The rate limiter's connection. */
  limits: Redis;
  mongo: Connection;
  registry: AgentRegistry;
  sessions: SessionService;
  idempotency: IdempotencyKeys;
  webhooks: Router;
  metrics: ApiMetrics;
  /** Worker capacity, in DISPATCH_MODE=capacity: readiness waits for a worker. */
  capacity?: WorkerCapacity;
  /** The JSON summary behind GET /api/metrics. */
  summary(): Promise<unknown>;
  /** Bull Board over the queues (api/admin/queues-board.ts), mounted behind the admin key. */
  queuesBoard?: Router;
}

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The Express application: routes and middleware, no listening and no connections of its own. */
export function createApp(d: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('query parser', 'simple');

  app.use(d.metrics.middleware);
  app.use(helmet());

  // Prometheus scrapes this without an API key: counts and timings only, no ids.
  app.get('/metrics', async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });

  const description = openApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(description);
  });

  // `/health` is the original service's path: callers of that one keep working.
  app.get(['/healthz', '/health'], (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Ready when Redis and MongoDB answer and, in capacity mode, a worker can take jobs: a session asked
  // for now gets its agent at once. (Sessions asked for before are accepted and wait in the queue.)
  app.get('/readyz', async (_req, res) => {
    const [redis, mongo, capacity] = await Promise.all([
      within(1000, d.redis.ping()).then(() => true, () => false),
      within(1000, d.mongo.db!.admin().command({ ping: 1 })).then(() => true, () => false),
      d.capacity ? within(1000, d.capacity.summary()).catch(() => undefined) : Promise.resolve(undefined),
    ]);
    const workers = capacity && { ready: capacity.workers.filter((w) => w.ready).length, live: capacity.workers.length, freeSlots: Math.max(0, capacity.freeSlots) };
    const needsWorker = d.capacity !== undefined;
    if (redis && mongo && (!needsWorker || (workers && workers.ready > 0))) return res.json({ status: 'ready', redis, mongo, ...(workers ? { workers } : {}) });
    res.setHeader('Retry-After', '2');
    const missing = [!redis && 'redis unreachable', !mongo && 'mongodb unreachable', redis && needsWorker && !workers?.ready && 'no agent worker ready yet'].filter(Boolean);
    sendProblem(res, 503, 'not-ready', 'Service unavailable', missing.join(', '), { redis, mongo, ...(workers ? { workers } : {}) });
  });

  const adminKeys = adminApiKeys(d.config);
  if (d.queuesBoard && adminKeys.length > 0) app.use(QUEUES_BOARD_PATH, requireAdminKey(adminKeys), d.queuesBoard);
  else {
    app.use(QUEUES_BOARD_PATH, (_req, res) => sendProblem(res, 404, 'not-found', 'Not found', 'the queue dashboard is off: set ADMIN_API_KEYS'));
  }

  // Signed by LiveKit, not by an API key: mounted before the key check.
  app.use('/api/livekit/webhook', d.webhooks);
  app.use('/api', requireApiKey(d.config.API_KEYS));
  app.use('/api', rateLimit({ redis: d.limits, prefix: d.config.QUEUE_PREFIX, points: d.config.API_RATE_LIMIT, durationSeconds: d.config.API_RATE_WINDOW }));
  app.use('/api/agents', ...jsonBody(d.config.BODY_LIMIT), agentRoutes(d.registry, new ProviderCheck(d.capacity)));
  app.use('/api/sessions/batch', ...jsonBody(d.config.BATCH_BODY_LIMIT));
  app.use('/api/sessions', ...jsonBody(d.config.BODY_LIMIT), sessionRoutes(d.sessions, d.idempotency));
  app.use('/api/batches', batchRoutes(d.sessions));
  app.get('/api/metrics', async (_req, res) => {
    res.json(await d.summary());
  });

  // The pages' routers match any path: after /api, so an API request never walks them.
  app.use(docsPage());
  // The page is public like /docs; everything it does goes through /api with the key its user types.
  app.use(playgroundRoutes(d.config.LIVEKIT_PUBLIC_URL ?? d.config.LIVEKIT_URL));

  app.use((req, res) => sendProblem(res, 404, 'not-found', 'Not found', `no route for ${req.method} ${req.path}`));
  app.use(errorHandler(d.logger));
  return app;
}
