import type { Redis } from 'ioredis';
import { luaScript } from '../redis.js';
import type { Provider } from './providers.js';

/**
 * Worker capacity, shared through Redis. Every worker beats every
 * HEARTBEAT_INTERVAL_MS with its free job slots; one that has not beaten for
 * HEARTBEAT_TTL_MS is gone: its slots stop counting and the dispatcher
 * recovers the sessions it held. Dispatchers reserve a slot before each
 * dispatch and a worker's claim of the job turns the reservation into a held
 * session, so replicas never dispatch more jobs than there are free slots.
 */
export const HEARTBEAT_INTERVAL_MS = 500;
export const HEARTBEAT_TTL_MS = 2000;
/** How long a dispatch holds a slot before its job is taken; the placement check looks sooner. */
export const RESERVATION_MS = 3000;
/** A waiting mark older than this was left by a dispatcher that died. */
const WAITING_FRESH_MS = 10_000;

export function capacityKeys(prefix: string, agentName: string) {
  const base = `${prefix}:workers:${agentName}`;
  return {
    /** ZSET worker id → time of its last heartbeat (ms). */
    live: base,
    /** HASH worker id → free job slots. */
    free: `${base}:free`,
    /** HASH worker id → WorkerInfo as JSON. */
    info: `${base}:info`,
    /** + worker id: SET of the sessions whose jobs that worker took. */
    heldPrefix: `${base}:held:`,
    /** ZSET session id → expiry (ms): dispatched into a slot, job not taken yet. */
    reservations: `${base}:reservations`,
    /** ZSET session id → last time a dispatcher saw it waiting for a slot (ms). */
    waiting: `${base}:waiting`,
    /** Published when a worker's free slots rise. */
    channel: `${base}:capacity`,
  };
}
export type CapacityKeys = ReturnType<typeof capacityKeys>;

export interface WorkerInfo {
  /** Job slots: WORKER_MAX_JOBS, or derived from the machine. */
  capacity: number;
  /** Jobs running or accepted and starting. */
  busy: number;
  free: number;
  /** Job processes started and waiting for a job. */
  warm: number;
  /** Warm processes the worker keeps (WORKER_IDLE_PROCESSES). */
  idle: number;
  /** Machine CPU use averaged over the guard's window (0..1). */
  cpu: number;
  /** The CPU guard holds new jobs back. */
  guard: boolean;
  draining: boolean;
  /** Has had a warm job process and is not draining: can take jobs as its slots allow. */
  ready: boolean;
  host: string;
  pid: number;
  /** Providers whose keys this worker has (common/workers/providers.ts); absent from workers older than it. */
  providers?: Provider[];
}

// ARGV: worker id, now, free slots, info, channel, then the sessions it holds (re-asserted, so a sweep
// that took the worker for dead while Redis was away cannot leave them unrecoverable).
const HEARTBEAT = luaScript(
  `local prev = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
if #ARGV > 5 then redis.call('SADD', KEYS[4], unpack(ARGV, 6)) end
local free = tonumber(ARGV[3])
if free > 0 and (not prev or tonumber(prev) < free) then redis.call('PUBLISH', ARGV[5], ARGV[1]) end
return 1`,
  4,
);

// A worker leaving on purpose has finished its jobs (or handed their sessions to LiveKit's participant_left).
const LEAVE = luaScript(
  `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1`,
  4,
);

// Sums the free slots of live workers, less the slots reserved by dispatches whose jobs are not taken yet.
const FREE_SLOTS = `local function freeSlots(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
  local free = 0
  if #ids > 0 then
    for _, f in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do free = free + math.max(0, tonumber(f) or 0) end
  end
  return free - redis.call('ZCOUNT', KEYS[3], now, '+inf')
end
`;

const RESERVE = luaScript(
  `${FREE_SLOTS}
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZSCORE', KEYS[3], ARGV[3]) then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
  return 1
end
if freeSlots(now) <= 0 then return 0 end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
return 1`,
  3,
);

const SLOTS = luaScript(`${FREE_SLOTS}
return freeSlots(tonumber(ARGV[1]))`, 3);

/** Removes a lapsed worker, unless it beat again meanwhile; returns the sessions it held. */
const FORGET = luaScript(
  `local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) >= tonumber(ARGV[2]) then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local held = redis.call('SMEMBERS', KEYS[4])
redis.call('DEL', KEYS[4])
return held`,
  4,
);

export interface CapacitySummary {
  workers: ({ id: string } & WorkerInfo)[];
  /** Free slots across live workers less the reserved ones. */
  freeSlots: number;
}

export class WorkerCapacity {
  readonly keys: CapacityKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    agentName: string,
  ) {
    this.keys = capacityKeys(prefix, agentName);
  }

  private get k3() {
    return [this.keys.live, this.keys.free, this.keys.info];
  }

  /**
   * A worker's beat: it is alive, has `info.free` slots and holds `held`
   * sessions; dispatchers waiting for a slot hear of a rise at once.
   */
  async heartbeat(workerId: string, info: WorkerInfo, held: string[] = [], now = Date.now()): Promise<void> {
    await HEARTBEAT(this.redis, [...this.k3, this.keys.heldPrefix + workerId], [workerId, now, info.free, JSON.stringify(info), this.keys.channel, ...held]);
  }

  async leave(workerId: string): Promise<void> {
    await LEAVE(this.redis, [...this.k3, this.keys.heldPrefix + workerId], [workerId]);
  }

  /** Takes one free slot for the session's dispatch; false when there is none. Reserving again refreshes it. */
  async reserve(sessionId: string, now = Date.now()): Promise<boolean> {
    const keys = [this.keys.live, this.keys.free, this.keys.reservations];
    return (await RESERVE(this.redis, keys, [now, HEARTBEAT_TTL_MS, sessionId, RESERVATION_MS])) === 1;
  }

  async unreserve(sessionId: string): Promise<void> {
    await this.redis.zrem(this.keys.reservations, sessionId);
  }

  async freeSlots(now = Date.now()): Promise<number> {
    return Number(await SLOTS(this.redis, [this.keys.live, this.keys.free, this.keys.reservations], [now, HEARTBEAT_TTL_MS]));
  }

  /** The live workers and the slots free among them. */
  async summary(now = Date.now()): Promise<CapacitySummary> {
    const [workers, freeSlots] = await Promise.all([this.live(now), this.freeSlots(now)]);
    return { workers, freeSlots };
  }

  /** The live workers, with what each published in its last heartbeat. */
  async live(now = Date.now()): Promise<CapacitySummary['workers']> {
    const ids = await this.redis.zrangebyscore(this.keys.live, now - HEARTBEAT_TTL_MS, '+inf');
    const infos = ids.length ? await this.redis.hmget(this.keys.info, ...ids) : [];
    return ids.flatMap((id, i) => (infos[i] ? [{ id, ...(JSON.parse(infos[i]!) as WorkerInfo) }] : []));
  }

  async isLive(workerId: string, now = Date.now()): Promise<boolean> {
    const score = await this.redis.zscore(this.keys.live, workerId);
    return score !== null && Number(score) >= now - HEARTBEAT_TTL_MS;
  }

  /** Workers whose heartbeat lapsed. */
  lapsed(now = Date.now()): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.live, '-inf', `(${now - HEARTBEAT_TTL_MS}`);
  }

  /** A worker no longer holds these sessions (their jobs ended). */
  async release(workerId: string, sessionIds: string[]): Promise<void> {
    await this.redis.srem(this.keys.heldPrefix + workerId, ...sessionIds);
  }

  /** The sessions whose jobs a worker took and has not finished. */
  held(workerId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.heldPrefix + workerId);
  }

  /** Drops a lapsed worker; undefined when it beat again meanwhile (then it is alive and keeps its sessions). */
  async forget(workerId: string, now = Date.now()): Promise<string[] | undefined> {
    const r = await FORGET(this.redis, [...this.k3, this.keys.heldPrefix + workerId], [workerId, now - HEARTBEAT_TTL_MS]);
    return Array.isArray(r) ? (r as string[]) : undefined;
  }

  /** Marks sessions a dispatcher holds back until a slot frees (refreshed while they wait). */
  async markWaiting(sessionIds: string[], now = Date.now()): Promise<void> {
    if (sessionIds.length === 0) return;
    await this.redis.zadd(this.keys.waiting, ...sessionIds.flatMap((id) => [now, id]));
  }

  async unmarkWaiting(sessionId: string): Promise<void> {
    await this.redis.zrem(this.keys.waiting, sessionId);
  }

  /** Sessions waiting for a slot now (marks left by a dead dispatcher are dropped). */
  async waitingCount(now = Date.now()): Promise<number> {
    await this.redis.zremrangebyscore(this.keys.waiting, '-inf', now - WAITING_FRESH_MS);
    return this.redis.zcard(this.keys.waiting);
  }

  async isWaiting(sessionId: string, now = Date.now()): Promise<boolean> {
    const score = await this.redis.zscore(this.keys.waiting, sessionId);
    return score !== null && Number(score) > now - WAITING_FRESH_MS;
  }
}
