import { z } from 'zod';
import { redisClusterSeed } from './redis.js';

/**
 * Settings come from the environment only. Each process declares the fields it
 * reads (one zod object per process, built from the shared fields below) and
 * parses them before opening any connection.
 */

export const DEV_LIVEKIT_API_KEY = 'devkey-livekit-api-key-2024';
export const DEV_LIVEKIT_API_SECRET = 'devkey-livekit-api-secret-2024-min-32-chars';
export const DEV_ADMIN_API_KEY = 'dev-admin-key';

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const nodeEnv = z
  .enum(['development', 'production', 'test'])
  .default('development')
  .describe('development, test or production; production refuses the dev defaults of secrets');

/** Fields every service reads. */
export const sharedEnv = {
  NODE_ENV: nodeEnv,
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level'),
  REDIS_URL: url(['redis:', 'rediss:'])
    .default('redis://127.0.0.1:6379')
    .describe('Redis for BullMQ queues and the config cache (needs maxmemory-policy noeviction); a Redis Cluster: any node\'s URL with ?cluster=1 (and a QUEUE_PREFIX with a hash tag)'),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}-]+$/, 'letters, digits, _ - { }')
    .default('agent-runtime')
    .describe('prefix of every Redis key; on Redis Cluster use a hash tag such as {agent-runtime}'),
  MONGODB_URI: url(['mongodb:', 'mongodb+srv:'])
    .default('mongodb://127.0.0.1:27017/agent-runtime')
    .describe('MongoDB holding agent configs and session records'),
  LIVEKIT_URL: url(['ws:', 'wss:', 'http:', 'https:'])
    .default('ws://127.0.0.1:7880')
    .describe('LiveKit server (or LiveKit Cloud project) URL'),
  LIVEKIT_API_KEY: z.string().min(1).default(DEV_LIVEKIT_API_KEY).describe('LiveKit API key'),
  LIVEKIT_API_SECRET: z
    .string()
    .min(32, 'at least 32 characters')
    .default(DEV_LIVEKIT_API_SECRET)
    .describe('LiveKit API secret'),
  DISPATCH_MODE: z
    .enum(['capacity', 'immediate'])
    .default('capacity')
    .describe('capacity: dispatch only into free worker slots, confirm each job was taken and place it again within about a second if not (this project\'s workers); immediate: dispatch at once and leave placement to LiveKit (agents run elsewhere)'),
  AGENT_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 _ -')
    .default('agent-runtime')
    .describe('name the worker registers under; dispatches name it explicitly'),
  CALLBACK_SECRET: z
    .string()
    .min(16, 'at least 16 characters')
    .default('dev-callback-secret-0123456789')
    .describe('HMAC secret that signs status callbacks (X-Agent-Runtime-Signature)'),
  CONFIG_CACHE_TTL: int(1, 86_400).default(300).describe('seconds an agent config stays cached in Redis'),
  CONFIG_NEGATIVE_TTL: int(1, 3600).default(5).describe('seconds an unknown agent id stays cached as unknown'),
  CONFIG_LRU_TTL_MS: int(100, 3_600_000).default(60_000).describe('milliseconds a config stays in a process without a change message'),
  SESSION_HOT_TTL: int(60, 30 * 86_400)
    .default(86_400)
    .describe('seconds a session stays in Redis once it is over and its history is in MongoDB (reads then come from MongoDB)'),
} as const;

const dispatchAttempts = int(1, 1000).default(20).describe('tries per session before it fails (transient LiveKit errors back off up to 10 s)');

export const apiEnv = {
  ...sharedEnv,
  HOST: z.string().min(1).default('127.0.0.1').describe('address the API listens on (0.0.0.0 in containers)'),
  PORT: int(0, 65535).default(8080).describe('HTTP port of the API'),
  API_KEYS: z
    .string()
    .default('dev-api-key')
    .transform((v) => v.split(',').map((k) => k.trim()).filter(Boolean))
    .pipe(z.array(z.string().min(8, 'each key at least 8 characters')).min(1, 'at least one key'))
    .describe('comma-separated bearer keys accepted on /api (dev default: dev-api-key)'),
  ADMIN_API_KEYS: z
    .string()
    .optional()
    .transform((v) => (v === undefined ? undefined : v.split(',').map((k) => k.trim()).filter(Boolean)))
    .pipe(z.array(z.string().min(8, 'each key at least 8 characters')).min(1, 'at least one key').optional())
    .describe(`comma-separated keys for the queue dashboard /admin/queues (Bearer, or the password of HTTP Basic); unset: ${DEV_ADMIN_API_KEY} outside production, the dashboard disabled with NODE_ENV=production`),
  API_RATE_LIMIT: int(1, 10_000_000).default(2000).describe('requests per API key per API_RATE_WINDOW seconds; over it: 429 with Retry-After'),
  API_RATE_WINDOW: int(1, 3600).default(1).describe('seconds of the per-key rate limit window'),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/, 'a size such as 256kb or 1mb').default('256kb').describe('largest JSON body accepted'),
  LIVEKIT_PUBLIC_URL: url(['ws:', 'wss:']).optional().describe('LiveKit URL handed to end users with their token (default: LIVEKIT_URL)'),
  PARTICIPANT_TOKEN_TTL: int(30, 86_400).default(900).describe('seconds a participant token stays valid'),
  DISPATCH_ATTEMPTS: dispatchAttempts,
  IDEMPOTENCY_TTL: int(60, 7 * 86_400).default(86_400).describe('seconds an Idempotency-Key is remembered'),
  BATCH_BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/, 'a size such as 16mb').default('16mb').describe('largest JSON body accepted by the batch endpoint'),
} as const;

export const dispatcherEnv = {
  ...sharedEnv,
  DISPATCH_ATTEMPTS: dispatchAttempts,
  DISPATCH_CONCURRENCY: int(1, 1000).default(16).describe('session jobs one dispatcher works on at once'),
  DISPATCH_RATE_MAX: int(1, 1_000_000).default(500).describe('at most this many dispatches per DISPATCH_RATE_DURATION_MS, across all dispatchers'),
  DISPATCH_RATE_DURATION_MS: int(1, 3_600_000).default(1000).describe('window of the global dispatch rate limit'),
  ROOM_EMPTY_TIMEOUT: int(0, 86_400).default(300).describe('seconds an empty room is kept (0: LiveKit default)'),
  ROOM_MAX_PARTICIPANTS: int(0, 100_000).default(0).describe('participant cap of a created room (0: none)'),
  AGENT_JOIN_TIMEOUT: int(1, 3600).default(15).describe('seconds a dispatched session waits for its agent before one re-dispatch, then fails agent_never_joined'),
  DISPATCHER_HOST: z.string().min(1).default('127.0.0.1').describe('address of the dispatcher /metrics endpoint (0.0.0.0 in containers)'),
  DISPATCHER_METRICS_PORT: int(0, 65535).default(9465).describe('port of the dispatcher /metrics endpoint (0: any free port)'),
} as const;
const secret = (what: string) => z.string().default('').describe(what);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);

export const workerEnv = {
  ...sharedEnv,
  OPENAI_API_KEY: secret('OpenAI (or OpenAI-compatible) API key for LLM, STT and TTS'),
  OPENAI_BASE_URL: url(['http:', 'https:']).default('https://api.openai.com/v1').describe('OpenAI-compatible endpoint; an agent\'s llm.baseURL overrides it for the LLM'),
  DEEPGRAM_API_KEY: secret('Deepgram API key'),
  DEEPGRAM_BASE_URL: url(['http:', 'https:', 'ws:', 'wss:']).default('https://api.deepgram.com').describe('Deepgram endpoint (STT websocket and TTS)'),
  BITHUMAN_API_SECRET: secret('BitHuman API secret, for agents with avatarModel'),
  BITHUMAN_API_URL: url(['http:', 'https:'])
    .default('https://auth.api.bithuman.ai/v1/runtime-tokens/request')
    .describe('BitHuman runtime-token endpoint'),
  BITHUMAN_MODE: z.enum(['cpu', 'gpu']).default('cpu').describe('BitHuman rendering mode'),
  AGENT_DISPATCH: z
    .enum(['explicit', 'automatic'])
    .default('explicit')
    .describe("explicit: the worker registers under AGENT_NAME and serves this API's sessions; automatic: it registers without a name and joins every new room named agent-{id}-room of a registered agent that no session of this API made (the original deployment's behaviour)"),
  WORKER_LOAD_THRESHOLD: num(0.01, 1)
    .default(0.9)
    .describe('CPU guard: while the CPU its jobs use (0..1 of all cores, averaged over 10 s) is above this, the worker takes no new jobs whatever its free slots (1: never)'),
  WORKER_MAX_JOBS: int(0, 10_000).default(0).describe('job slots of this worker (0: derived from the machine: 3 per core, at most one per 440 MiB of memory)'),
  WORKER_IDLE_PROCESSES: int(0, 64).default(0).describe('job processes kept warm (0: as many as the job slots, at most 64)'),
  SESSION_NO_USER_TIMEOUT: int(0, 86_400)
    .default(300)
    .describe('seconds an agent waits in its room for a user; none by then: the session ends no_user and frees its slot (0: waits forever)'),
  WORKER_HOST: z.string().min(1).default('127.0.0.1').describe('address of the worker health and metrics endpoints (0.0.0.0 in containers)'),
  WORKER_HEALTH_PORT: int(0, 65535).default(8081).describe('port of the agent server health endpoint (0: any free port)'),
  WORKER_METRICS_PORT: int(0, 65535).default(9466).describe('port of the worker /metrics endpoint (0: any free port)'),
} as const;

export type WorkerConfig = z.output<z.ZodObject<typeof workerEnv>>;

export type SharedConfig = z.output<z.ZodObject<typeof sharedEnv>>;
export type ApiConfig = z.output<z.ZodObject<typeof apiEnv>>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Secrets whose development defaults must never reach production. */
const DEV_DEFAULTS: Record<string, string | string[]> = {
  CALLBACK_SECRET: 'dev-callback-secret-0123456789',
  LIVEKIT_API_KEY: DEV_LIVEKIT_API_KEY,
  LIVEKIT_API_SECRET: DEV_LIVEKIT_API_SECRET,
  API_KEYS: ['dev-api-key'],
  ADMIN_API_KEYS: [DEV_ADMIN_API_KEY],
};

/**
 * The keys that open /admin/queues: ADMIN_API_KEYS, else the development key
 * outside production; none (the dashboard is off) in production without it,
 * so an unset variable never leaves it open with a known key.
 */
export function adminApiKeys(config: { NODE_ENV: string; ADMIN_API_KEYS?: string[] }): string[] {
  if (config.ADMIN_API_KEYS) return config.ADMIN_API_KEYS;
  return config.NODE_ENV === 'production' ? [] : [DEV_ADMIN_API_KEY];
}

/**
 * Parses `env` against `shape`. Throws a ConfigError whose message is one line
 * per bad variable: its name and what is expected. Never echoes a value.
 */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  env: NodeJS.ProcessEnv = process.env,
): z.output<z.ZodObject<S>> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) {
    const v = env[key];
    input[key] = v === '' ? undefined : v;
  }
  const parsed = z.object(shape).safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  const out = parsed.data as Record<string, unknown>;
  // On a cluster every key must share one slot (scripts and pipelines span several): the prefix needs a hash tag.
  if (typeof out.REDIS_URL === 'string' && typeof out.QUEUE_PREFIX === 'string' && redisClusterSeed(out.REDIS_URL).cluster && !/\{[^{}]+\}/.test(out.QUEUE_PREFIX)) {
    throw new ConfigError('invalid configuration: QUEUE_PREFIX: on a Redis Cluster (REDIS_URL with cluster=1) it needs a hash tag, such as {agent-runtime}');
  }
  if (out.NODE_ENV === 'production') {
    for (const [key, dev] of Object.entries(DEV_DEFAULTS)) {
      if (!(key in out)) continue;
      const value = out[key];
      const isDev = Array.isArray(dev)
        ? Array.isArray(value) && value.some((v) => dev.includes(v))
        : value === dev;
      if (isDev) throw new ConfigError(`invalid configuration: ${key}: the development default is refused when NODE_ENV=production`);
    }
  }
  return parsed.data;
}

/** For entry points: parse, or print one clear line and exit 1. */
export function loadConfigOrExit<S extends z.ZodRawShape>(shape: S): z.output<z.ZodObject<S>> {
  try {
    return loadConfig(shape);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
