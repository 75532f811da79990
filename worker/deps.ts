import { loadConfig, workerEnv, type WorkerConfig } from '../common/config.js';
import { createLogger, type Logger } from '../common/logger.js';
import { setRtcLogLevel } from '../common/rtc-log.js';
import { agentModels, type AgentResolver, createResolver } from '../common/agents/index.js';
import { connectMongo } from '../common/mongo.js';
import { createRedis } from '../common/redis.js';
import { ConversationMemory, type Placements, sessionRecords, type SessionStore } from '../common/sessions/index.js';

export interface WorkerDeps {
  config: WorkerConfig;
  log: Logger;
  resolver: AgentResolver;
  store: SessionStore;
  placements: Placements;
  turns: ConversationMemory;
}

let deps: Promise<WorkerDeps> | undefined;

/**
 * Connections of one job process, made once (at prewarm) and shared by every
 * job the process runs: the config resolver, the session store, the
 * session's placement and its conversation memory.
 */
export function workerDeps(): Promise<WorkerDeps> {
  deps ??= (async () => {
    const config = loadConfig(workerEnv);
    const log = createLogger('worker', config.LOG_LEVEL);
    setRtcLogLevel(config.LOG_LEVEL);
    const redis = createRedis(config.REDIS_URL, 'fail-fast');
    redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
    const mongo = await connectMongo(config.MONGODB_URI);
    const { resolver } = await createResolver(config, redis, await agentModels(mongo));
    // A job's first step is its config: connections and code paths are made ready here, before any job.
    await resolver.warm();
    const { store, placements } = await sessionRecords(mongo, redis, config.QUEUE_PREFIX, log, config.AGENT_NAME);
    return { config, log, resolver, store, placements, turns: new ConversationMemory(redis, config.QUEUE_PREFIX) };
  })();
  deps.catch(() => (deps = undefined));
  return deps;
}
