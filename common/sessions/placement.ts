import type { Redis } from 'ioredis';
import { luaScript } from '../redis.js';
import { capacityKeys, type CapacityKeys } from '../workers/capacity.js';

/**
 * Where a session's agent runs, kept in Redis beside its queue: the dispatch
 * generation, and which job (on which worker) took it.
 *
 * Every dispatch carries its generation in its metadata. A worker takes a job
 * only by claiming it here, and a claim succeeds only for the current
 * generation and only once; placing a session again (LiveKit dropped the job,
 * the worker died, the agent never joined) moves the generation on first. So
 * however many dispatches a session has had, at most one agent serves it.
 */
export const PLACEMENT_TTL_SECONDS = 24 * 3600;

export type ClaimResult = 'ok' | 'stale' | 'taken' | 'over';

export interface Placement {
  gen: number;
  jobId?: string;
  workerId?: string;
  /** When a worker took the job (ms). */
  acceptedAt?: number;
  /** When the job's process began running it (ms). */
  startedAt?: number;
  /** Times the session was placed again. */
  placements: number;
  /** Of those, times because its agent died. */
  recoveries: number;
  over: boolean;
}

const CLAIM = luaScript(
  `if redis.call('HGET', KEYS[1], 'over') then return 'over' end
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if tonumber(ARGV[1]) ~= gen then return 'stale' end
local job = redis.call('HGET', KEYS[1], 'job')
if job then
  if job == ARGV[2] then return 'ok' end
  return 'taken'
end
redis.call('HSET', KEYS[1], 'job', ARGV[2], 'worker', ARGV[3], 'acceptedAt', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[6])
return 'ok'`,
  4,
);

// ARGV: expected gen ('' = any), expected worker ('' = any), force (take from a claimer), held prefix, session id, ttl, recovery.
const REPLACE = luaScript(
  `if redis.call('HGET', KEYS[1], 'over') then return 'over' end
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if ARGV[1] ~= '' and gen ~= tonumber(ARGV[1]) then return 'superseded' end
local worker = redis.call('HGET', KEYS[1], 'worker')
if ARGV[2] ~= '' and worker ~= ARGV[2] then return 'superseded' end
if redis.call('HGET', KEYS[1], 'job') then
  if ARGV[3] ~= '1' then return 'placed' end
  if worker then redis.call('SREM', ARGV[4] .. worker, ARGV[5]) end
  redis.call('HDEL', KEYS[1], 'job', 'worker', 'acceptedAt', 'startedAt')
end
redis.call('HSET', KEYS[1], 'gen', gen + 1)
redis.call('HINCRBY', KEYS[1], 'placements', 1)
if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[1], 'recoveries', 1) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return gen + 1`,
  1,
);

const STARTED = luaScript(
  `if redis.call('HGET', KEYS[1], 'job') == ARGV[1] then redis.call('HSET', KEYS[1], 'startedAt', ARGV[2]) return 1 end
return 0`,
  1,
);

const FINISH = luaScript(
  `local worker = redis.call('HGET', KEYS[1], 'worker')
if worker then redis.call('SREM', ARGV[1] .. worker, ARGV[2]) end
redis.call('HSET', KEYS[1], 'over', '1')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1`,
  3,
);

export type ReplaceResult = { gen: number } | { refused: 'over' | 'superseded' | 'placed' };

export class Placements {
  private readonly keys: CapacityKeys;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    agentName: string,
  ) {
    this.keys = capacityKeys(prefix, agentName);
  }

  key(sessionId: string): string {
    return `${this.prefix}:session:${sessionId}`;
  }

  /** A worker takes the job of `gen`; `free` is the worker's free slots counting this job. */
  async claim(c: { sessionId: string; gen: number; jobId: string; workerId: string; free: number; now?: number }): Promise<ClaimResult> {
    const keys = [this.key(c.sessionId), this.keys.reservations, this.keys.free, this.keys.heldPrefix + c.workerId];
    const args = [c.gen, c.jobId, c.workerId, c.now ?? Date.now(), c.free, c.sessionId, PLACEMENT_TTL_SECONDS];
    return (await CLAIM(this.redis, keys, args)) as ClaimResult;
  }

  /**
   * Opens the next generation, so the session can be dispatched again and no
   * job of an earlier one can still be claimed. Refused when the session is
   * over, moved on meanwhile (`gen`/`workerId` no longer match), or already
   * taken and `force` is not set.
   */
  async replace(sessionId: string, o: { gen?: number; workerId?: string; force?: boolean; recovery?: boolean } = {}): Promise<ReplaceResult> {
    const r = await REPLACE(this.redis, [this.key(sessionId)], [
      o.gen ?? '',
      o.workerId ?? '',
      o.force ? '1' : '0',
      this.keys.heldPrefix,
      sessionId,
      PLACEMENT_TTL_SECONDS,
      o.recovery ? '1' : '0',
    ]);
    return typeof r === 'number' ? { gen: r } : { refused: r as 'over' | 'superseded' | 'placed' };
  }

  /** The session is over: no job of it may be claimed, and its worker no longer holds it. */
  async finish(sessionId: string): Promise<void> {
    await FINISH(this.redis, [this.key(sessionId), this.keys.reservations, this.keys.waiting], [this.keys.heldPrefix, sessionId, PLACEMENT_TTL_SECONDS]);
  }

  async get(sessionId: string): Promise<Placement> {
    const h = await this.redis.hgetall(this.key(sessionId));
    return {
      gen: Number(h.gen ?? 0),
      ...(h.job ? { jobId: h.job } : {}),
      ...(h.worker ? { workerId: h.worker } : {}),
      ...(h.acceptedAt ? { acceptedAt: Number(h.acceptedAt) } : {}),
      ...(h.startedAt ? { startedAt: Number(h.startedAt) } : {}),
      placements: Number(h.placements ?? 0),
      recoveries: Number(h.recoveries ?? 0),
      over: h.over === '1',
    };
  }

  /** The job's process began running it (a job can wait for a process while its worker starts one). */
  async started(sessionId: string, jobId: string, now = Date.now()): Promise<void> {
    await STARTED(this.redis, [this.key(sessionId)], [jobId, now]);
  }

  /** Whether `jobId` is the job serving the session now (not one replaced since). */
  async isCurrent(sessionId: string, jobId: string): Promise<boolean> {
    return (await this.redis.hget(this.key(sessionId), 'job')) === jobId;
  }
}
