import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { agentModels } from '../common/models/agent.js';
import { apiEnv, loadConfig, type ApiConfig } from '../common/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { connectMongo } from '../common/mongo.js';
import { createRedis } from '../common/redis.js';
import { AgentRegistry } from './agents/registry.js';
import { createApp } from './app.js';

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
  const registry = new AgentRegistry({ models, redis, prefix: config.QUEUE_PREFIX, cacheTtl: config.CONFIG_CACHE_TTL });

  const app = createApp({ config, logger: log, redis, mongo, registry });
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
      redis.disconnect();
      await mongo.close();
    },
  };
}
