import type { Redis } from 'ioredis';
import { luaScript } from '../redis.js';
import type { SessionDoc } from './model.js';
import type { SessionJob, SessionStatus } from './schema.js';
import { ENTERED_FROM, TERMINAL_STATUSES } from './state.js';

/**
 * Running sessions in Redis: one hash per session beside its queue (same
 * prefix, so the same hash tag on a cluster), from the 202 until it is over
 * and written to MongoDB. Every status move is one script that checks the
 * move against the state table and applies it, so a move costs one round
 * trip and two moves of one session can never interleave.
 *
 * Hash fields: `base` (the request, JSON, never changed), `room`, `pid`
 * (participant identity), `status`, `tr` (transitions, `status:ms;…`),
 * `at` (updated, ms), `v` (changes made) and `fv` (changes in MongoDB), and
 * the fields a move sets (attempts, dispatchId, endedAt in ms, …). Each
 * change marks the session in the `dirty` sorted set (scored by when it
 * first became unwritten) for the history writer.
 */

export interface RecordKeys {
  prefix: string;
  dirty: string;
  record(sessionId: string): string;
  roomOpen(room: string): string;
}

export function recordKeys(prefix: string): RecordKeys {
  return {
    prefix,
    dirty: `${prefix}:rec-dirty`,
    record: (id) => `${prefix}:rec:${id}`,
    roomOpen: (room) => `${prefix}:room-open:${room}`,
  };
}

/** Fields a move may set beside the status. */
export interface TransitionFields {
  configVersion?: number;
  /** Dispatch attempts made so far, this one included. */
  attempts?: number;
  dispatchId?: string;
  failureReason?: string;
  redispatches?: number;
  endedAt?: Date;
  durationSeconds?: number;
}

const TERMINAL = `,${TERMINAL_STATUSES.join(',')},`;

// KEYS: dirty. ARGV: prefix, now, then per session: id, room, pid, base, requestedAt (ms).
const CREATE = luaScript(
  `local made = 0
for i = 3, #ARGV, 5 do
  local id = ARGV[i]
  local key = ARGV[1] .. ':rec:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'base', ARGV[i+3], 'room', ARGV[i+1], 'pid', ARGV[i+2], 'status', 'queued',
      'tr', 'queued:' .. ARGV[i+4], 'at', ARGV[i+4], 'attempts', '0', 'v', '1', 'fv', '0')
    redis.call('SADD', ARGV[1] .. ':room-open:' .. ARGV[i+1], id)
    redis.call('ZADD', KEYS[1], 'NX', ARGV[2], id)
    made = made + 1
  end
end
return made`,
  1,
);

// KEYS: record, dirty. ARGV: prefix, id, to, from-list, now, terminal, base ('' = none), room, pid, requestedAt, then field pairs.
// Returns nil (no record), {status} (move refused), or {from, record} (moved).
const MOVE = luaScript(
  `local key = KEYS[1]
local st = redis.call('HGET', key, 'status')
local room
if not st then
  if ARGV[7] == '' or not string.find(ARGV[4], ',queued,', 1, true) then return false end
  room = ARGV[8]
  redis.call('HSET', key, 'base', ARGV[7], 'room', room, 'pid', ARGV[9], 'status', 'queued',
    'tr', 'queued:' .. ARGV[10], 'attempts', '0', 'v', '0', 'fv', '0')
  redis.call('SADD', ARGV[1] .. ':room-open:' .. room, ARGV[2])
  st = 'queued'
elseif not string.find(ARGV[4], ',' .. st .. ',', 1, true) then
  return {st}
else
  room = redis.call('HGET', key, 'room')
end
local tr = redis.call('HGET', key, 'tr')
redis.call('HSET', key, 'status', ARGV[3], 'tr', tr .. ';' .. ARGV[3] .. ':' .. ARGV[5], 'at', ARGV[5])
for i = 11, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i+1]) end
redis.call('HINCRBY', key, 'v', 1)
if ARGV[6] == '1' then redis.call('SREM', ARGV[1] .. ':room-open:' .. room, ARGV[2]) end
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[2])
return {st, redis.call('HGETALL', key)}`,
  2,
);

// KEYS: record, dirty. ARGV: id, expected status, now, then field pairs.
const UPDATE = luaScript(
  `if redis.call('HGET', KEYS[1], 'status') ~= ARGV[2] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
redis.call('HSET', KEYS[1], 'at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 1`,
  2,
);

// KEYS: dirty. ARGV: prefix, ttl of a written final record (ms), terminal list, now, then pairs id, version written.
// A final record written whole expires later. One written older than it is now (it changed since it was read, or a
// writer that lost its lease wrote over a newer copy) is marked again, so its newest copy is written after.
const WRITTEN = luaScript(
  `for i = 5, #ARGV, 2 do
  local key = ARGV[1] .. ':rec:' .. ARGV[i]
  local v = redis.call('HGET', key, 'v')
  if not v then
    redis.call('ZREM', KEYS[1], ARGV[i])
  elseif v == ARGV[i+1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HSET', key, 'fv', v)
    local st = redis.call('HGET', key, 'status')
    if string.find(ARGV[3], ',' .. st .. ',', 1, true) then redis.call('PEXPIRE', key, ARGV[2]) end
  else
    redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[i])
  end
end
return 1`,
  1,
);

interface RequestBase {
  agentId: string;
  roomName: string;
  participantIdentity: string;
  metadata?: Record<string, unknown>;
  batchId?: string;
  source?: SessionJob['source'];
  scheduledAt?: number;
  callbackUrl?: string;
  requestedAt: number;
  /** The config version the session runs; a record made from an older job has it only once dispatched. */
  configVersion?: number;
}

function baseOf(job: SessionJob): RequestBase {
  return {
    agentId: job.agentId,
    roomName: job.roomName,
    participantIdentity: job.participantIdentity,
    ...(job.metadata ? { metadata: job.metadata } : {}),
    ...(job.batchId ? { batchId: job.batchId } : {}),
    ...(job.source ? { source: job.source } : {}),
    ...(job.scheduledAt ? { scheduledAt: Date.parse(job.scheduledAt) } : {}),
    ...(job.callbackUrl ? { callbackUrl: job.callbackUrl } : {}),
    requestedAt: Date.parse(job.requestedAt),
    ...(job.configVersion !== undefined ? { configVersion: job.configVersion } : {}),
  };
}

function fieldArgs(fields: TransitionFields): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out.push(k, v instanceof Date ? String(v.getTime()) : String(v));
  }
  return out;
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** A record hash as the session document MongoDB keeps. */
export function docFromHash(sessionId: string, h: Record<string, string>): SessionDoc {
  const base = JSON.parse(h.base!) as RequestBase;
  const transitions = (h.tr ?? '').split(';').map((t) => {
    const i = t.lastIndexOf(':');
    return { status: t.slice(0, i) as SessionStatus, at: new Date(Number(t.slice(i + 1))) };
  });
  const doc: SessionDoc = {
    _id: sessionId,
    agentId: base.agentId,
    roomName: base.roomName,
    participantIdentity: base.participantIdentity,
    status: h.status as SessionStatus,
    transitions,
    ...(base.metadata ? { metadata: base.metadata } : {}),
    ...(base.batchId ? { batchId: base.batchId } : {}),
    ...(base.source ? { source: base.source } : {}),
    ...(base.scheduledAt !== undefined ? { scheduledAt: new Date(base.scheduledAt) } : {}),
    ...(base.callbackUrl ? { callbackUrl: base.callbackUrl } : {}),
    attempts: Number(h.attempts ?? 0),
    requestedAt: new Date(base.requestedAt),
    updatedAt: new Date(Number(h.at ?? base.requestedAt)),
  };
  const configVersion = num(h.configVersion) ?? base.configVersion;
  if (configVersion !== undefined) doc.configVersion = configVersion;
  if (h.dispatchId) doc.dispatchId = h.dispatchId;
  if (h.failureReason) doc.failureReason = h.failureReason;
  if (h.redispatches !== undefined) doc.redispatches = num(h.redispatches)!;
  if (h.endedAt !== undefined) doc.endedAt = new Date(Number(h.endedAt));
  if (h.durationSeconds !== undefined) doc.durationSeconds = num(h.durationSeconds)!;
  return doc;
}

function hashFromFlat(flat: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  return h;
}

/** A record read for the history writer: the document and the change count it reflects. */
export interface UnwrittenRecord {
  doc: SessionDoc;
  version: string;
  /** Whether MongoDB has any earlier version of it. */
  inHistory: boolean;
}

export class HotRecords {
  readonly keys: RecordKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = recordKeys(prefix);
  }

  /** Records queued sessions (one round trip per 500); any already recorded are left as they are. */
  async createQueued(jobs: SessionJob[]): Promise<void> {
    const now = String(Date.now());
    const chunks: string[][] = [];
    for (let i = 0; i < jobs.length; i += 500) {
      const args = [this.keys.prefix, now];
      for (const j of jobs.slice(i, i + 500)) args.push(j.sessionId, j.roomName, j.participantIdentity, JSON.stringify(baseOf(j)), String(Date.parse(j.requestedAt)));
      chunks.push(args);
    }
    await Promise.all(chunks.map((args) => CREATE(this.redis, [this.keys.dirty], args)));
  }

  /**
   * Moves a session to `to` if the state table allows it from its status. A
   * session without a record (its API wrote it after the queue and has not
   * got there yet) is recorded from `job`, queued, and moved.
   */
  async move(sessionId: string, to: SessionStatus, fields: TransitionFields, job?: SessionJob): Promise<{ doc: SessionDoc; from: SessionStatus } | undefined> {
    const base = job ? [JSON.stringify(baseOf(job)), job.roomName, job.participantIdentity, String(Date.parse(job.requestedAt))] : ['', '', '', ''];
    const res = (await MOVE(
      this.redis,
      [this.keys.record(sessionId), this.keys.dirty],
      [this.keys.prefix, sessionId, to, `,${ENTERED_FROM[to].join(',')},`, Date.now(), TERMINAL.includes(`,${to},`) ? '1' : '0', ...base, ...fieldArgs(fields)],
    )) as null | [string] | [string, string[]];
    if (!res || res.length === 1) return undefined;
    return { from: res[0] as SessionStatus, doc: docFromHash(sessionId, hashFromFlat(res[1])) };
  }

  /** Sets fields of a session still in `expected`. */
  async update(sessionId: string, expected: SessionStatus, fields: TransitionFields): Promise<boolean> {
    const res = await UPDATE(this.redis, [this.keys.record(sessionId), this.keys.dirty], [sessionId, expected, Date.now(), ...fieldArgs(fields)]);
    return res === 1;
  }

  async get(sessionId: string): Promise<SessionDoc | undefined> {
    const h = await this.redis.hgetall(this.keys.record(sessionId));
    return h.base ? docFromHash(sessionId, h) : undefined;
  }

  async status(sessionId: string): Promise<SessionStatus | undefined> {
    return ((await this.redis.hget(this.keys.record(sessionId), 'status')) ?? undefined) as SessionStatus | undefined;
  }

  /** The sessions of a room that are not over, with their status and user. */
  async openInRoom(room: string): Promise<{ _id: string; status: SessionStatus; participantIdentity: string }[]> {
    const ids = (await this.redis.smembers(this.keys.roomOpen(room))).sort();
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hmget(this.keys.record(id), 'status', 'pid');
    const rows = (await pipe.exec()) ?? [];
    return ids.flatMap((id, i) => {
      const [status, pid] = (rows[i]?.[1] ?? []) as (string | null)[];
      return status && !TERMINAL_STATUSES.includes(status as SessionStatus) ? [{ _id: id, status: status as SessionStatus, participantIdentity: pid ?? '' }] : [];
    });
  }

  /** Up to `limit` sessions with changes not yet in MongoDB, the longest waiting first. */
  async unwritten(limit: number): Promise<UnwrittenRecord[]> {
    const ids = await this.redis.zrange(this.keys.dirty, 0, limit - 1);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.record(id));
    const rows = (await pipe.exec()) ?? [];
    const out: UnwrittenRecord[] = [];
    const gone: string[] = [];
    ids.forEach((id, i) => {
      const h = rows[i]?.[1] as Record<string, string> | undefined;
      if (!h?.base) gone.push(id);
      else out.push({ doc: docFromHash(id, h), version: h.v ?? '0', inHistory: (h.fv ?? '0') !== '0' });
    });
    if (gone.length) await this.redis.zrem(this.keys.dirty, ...gone);
    return out;
  }

  /** Marks records as written at the versions read; a final one expires `ttlMs` later. */
  async written(records: UnwrittenRecord[], ttlMs: number): Promise<void> {
    if (records.length === 0) return;
    await WRITTEN(this.redis, [this.keys.dirty], [this.keys.prefix, ttlMs, TERMINAL, Date.now(), ...records.flatMap((r) => [r.doc._id, r.version])]);
  }

  /** Whether every change made before `at` (ms) is in MongoDB. */
  async writtenUpTo(at: number): Promise<boolean> {
    return (await this.redis.zrangebyscore(this.keys.dirty, '-inf', at, 'LIMIT', 0, 1)).length === 0;
  }

  /** How far behind the history is: ms since the oldest unwritten change, and how many sessions wait. */
  async lag(): Promise<{ ms: number; sessions: number }> {
    const [oldest, count] = await Promise.all([this.redis.zrange(this.keys.dirty, 0, 0, 'WITHSCORES'), this.redis.zcard(this.keys.dirty)]);
    return { ms: oldest[1] ? Math.max(0, Date.now() - Number(oldest[1])) : 0, sessions: count };
  }
}
