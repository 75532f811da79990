import { AgentResolver } from './resolver.js';
import type { SharedConfig } from '../config.js';
import type { AgentModels } from './model.js';
import type { Redis } from '../redis.js';
import { createRedis } from '../redis.js';

/** A resolver wired from the shared settings, with its own subscriber connection. */
export async function createResolver(config: SharedConfig, redis: Redis, models: AgentModels, onTier?: ConstructorParameters<typeof AgentResolver>[0]['onTier']) {
  const subscriber = createRedis(config.REDIS_URL, 'blocking');
  subscriber.on('error', () => undefined);
  const resolver = new AgentResolver({
    redis,
    subscriber,
    models,
    prefix: config.QUEUE_PREFIX,
    redisTtl: config.CONFIG_CACHE_TTL,
    negativeTtl: config.CONFIG_NEGATIVE_TTL,
    lruTtlMs: config.CONFIG_LRU_TTL_MS,
    ...(onTier ? { onTier } : {}),
  });
  await resolver.start();
  return {
    resolver,
    close() {
      resolver.close();
      subscriber.disconnect();
    },
  };
}
