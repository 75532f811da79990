import type { Queue } from 'bullmq';
import type { AgentDispatchClient, RoomServiceClient } from 'livekit-server-sdk';
import type { AgentResolver } from '../../common/agents/index.js';
import type { ApiConfig } from '../../common/config.js';
import {
  AgentNotFoundError,
  AgentVersionNotFoundError,
  ConflictError,
  NotFoundError,
  ValidationError,
  type FieldError,
} from '../../common/errors.js';
import { enqueueCallback, type CallbackJob } from '../../common/callbacks.js';
import { doneIfGone } from '../../common/livekit.js';
import type { Logger } from '../../common/logger.js';
import { sessionJobOptions } from '../../common/queue.js';
import {
  batchRequestSchema,
  callbackPayload,
  ENTERED_FROM,
  newId,
  type Placements,
  queuedRecord,
  type SessionDoc,
  type SessionJob,
  type SessionListQuery,
  type SessionRequest,
  sessionRequestSchema,
  type SessionStatus,
  type SessionStore,
  TERMINAL_STATUSES,
  tokenRequestSchema,
} from '../../common/sessions/index.js';
import { buildRoomName, newRoomSuffix } from '../../common/rooms.js';
import type { WorkerCapacity } from '../../common/workers/capacity.js';
import { fieldErrors, parseOrThrow } from '../../common/validate.js';
import { sessionToken, type TokenAgent, type TokenSession } from './participant-token.js';
import { placementView, sessionView, viewFromJob, type SessionView } from './views.js';

/** What the service reports about accepted work; the HTTP layer turns it into Prometheus metrics. */
export interface SessionMetrics {
  accepted(agentId: string, secondsSinceRequest: number): void;
  batch(size: number): void;
}

export interface SessionServiceDeps {
  metrics?: SessionMetrics;
  config: ApiConfig;
  queue: Queue<SessionJob>;
  store: SessionStore;
  resolver: AgentResolver;
  log?: Logger;
  callbacks: Queue<CallbackJob>;
  rooms: RoomServiceClient;
  dispatch: AgentDispatchClient;
  placements: Placements;
  /** DISPATCH_MODE=capacity: sessions wait for a free worker slot. */
  capacity?: WorkerCapacity;
}

export interface CreatedSession {
  sessionId: string;
  agentId: string;
  roomName: string;
  status: 'queued';
  livekitUrl: string;
  participantToken: string;
}

/** A join token for a session's room (POST /api/sessions/:id/token, or each session of a batch with `tokens`). */
export interface SessionToken {
  sessionId: string;
  roomName: string;
  participantToken: string;
}

export interface CreatedBatch {
  batchId: string;
  accepted: number;
  sessionIds: string[];
  /** With `tokens`: where to join, and each session's token, in the order of `sessionIds`. */
  livekitUrl?: string;
  sessions?: SessionToken[];
}

export interface BatchProgress {
  batchId: string;
  accepted: number;
  counts: Record<SessionStatus, number>;
  done: boolean;
}

/** Session requests: validate, check the agent, queue durably, answer. */
export class SessionService {
  constructor(private readonly d: SessionServiceDeps) {}

  private job(req: SessionRequest, configVersion: number, batchId?: string, batchCallbackUrl?: string, sessionId = newId('ses')): SessionJob {
    return {
      sessionId,
      agentId: req.agentId,
      roomName: req.roomName ?? buildRoomName(req.agentId, newRoomSuffix()),
      participantIdentity: req.participant?.identity ?? `user-${sessionId.slice(4)}`,
      ...(req.metadata ? { metadata: req.metadata } : {}),
      ...(batchId ? { batchId } : {}),
      ...(req.scheduledAt ? { scheduledAt: new Date(req.scheduledAt).toISOString() } : {}),
      ...((req.callbackUrl ?? batchCallbackUrl) ? { callbackUrl: req.callbackUrl ?? batchCallbackUrl } : {}),
      requestedAt: new Date().toISOString(),
      configVersion,
    };
  }

  /**
   * The version a request runs: the one it names, else the agent's current
   * one. A named version that is not current is looked up: an unknown one is
   * AgentVersionNotFoundError.
   */
  private async pinnedVersion(agentId: string, current: number, asked: number | undefined): Promise<number> {
    if (asked !== undefined && asked !== current) await this.d.resolver.resolveVersion(agentId, asked);
    return asked ?? current;
  }

  private jobOptions(job: SessionJob) {
    const opts = sessionJobOptions(job.sessionId, this.d.config.DISPATCH_ATTEMPTS);
    // A scheduled session is a delayed job: it stays queued until its time.
    const delay = job.scheduledAt ? Date.parse(job.scheduledAt) - Date.now() : 0;
    return delay > 0 ? { ...opts, delay } : opts;
  }

  /** The "queued" callback: later changes are announced by whoever makes them. */
  private async announceQueued(jobs: SessionJob[]): Promise<void> {
    for (const job of jobs) {
      if (job.callbackUrl) await enqueueCallback(this.d.callbacks, job.callbackUrl, callbackPayload(queuedRecord(job), undefined));
    }
  }

  async create(body: unknown): Promise<CreatedSession> {
    const started = performance.now();
    const req = parseOrThrow(sessionRequestSchema, body);
    const { config } = await this.d.resolver.resolve(req.agentId); // unknown or deleted: 404, nothing queued
    const configVersion = await this.pinnedVersion(req.agentId, config.version, req.version); // unknown version: 404 naming `version`
    const job = this.job(req, configVersion);
    // Queue first: a session is accepted once its job is durable. Its record follows at once
    // (a dispatcher that gets there first records it from the job).
    await this.d.queue.add('session', job, this.jobOptions(job));
    await this.d.store.createQueued([job]);
    await this.announceQueued([job]);
    const token = await sessionToken(this.d.config, { ...job, status: 'queued' }, config, req.participant);
    this.d.metrics?.accepted(job.agentId, (performance.now() - started) / 1000);
    return {
      sessionId: job.sessionId,
      agentId: job.agentId,
      roomName: job.roomName,
      status: 'queued',
      livekitUrl: this.livekitUrl,
      participantToken: token,
    };
  }

  /** The LiveKit URL end users join with their token. */
  private get livekitUrl(): string {
    return this.d.config.LIVEKIT_PUBLIC_URL ?? this.d.config.LIVEKIT_URL;
  }

  /**
   * A new join token for a session that is not over, for its own participant
   * or another: batch sessions get theirs here, and a user whose token
   * expired gets a fresh one. The same rule as the 202's token decides whether
   * it may carry the dispatch.
   */
  async token(sessionId: string, body: unknown): Promise<SessionToken & { livekitUrl: string }> {
    const { participant } = parseOrThrow(tokenRequestSchema, body ?? {});
    const s = await this.tokenSession(sessionId);
    if (TERMINAL_STATUSES.includes(s.status)) throw new ConflictError(`session is already ${s.status}`);
    const agent = async (): Promise<TokenAgent> => (await this.d.resolver.resolve(s.agentId)).config;
    const participantToken = await sessionToken(this.d.config, s, agent, participant);
    return { sessionId, roomName: s.roomName, livekitUrl: this.livekitUrl, participantToken };
  }

  /** What a token needs of a session: from its record, else (not recorded yet) from its job, queued. */
  private async tokenSession(sessionId: string): Promise<TokenSession> {
    const doc = await this.d.store.get(sessionId);
    if (doc) return tokenSessionOf(doc);
    const job = await this.d.queue.getJob(sessionId);
    if (job?.data?.sessionId !== sessionId) throw new NotFoundError(`session ${JSON.stringify(sessionId)} does not exist`);
    return { ...job.data, status: 'queued' };
  }

  /** Validates every item first; one bad item fails the whole batch and nothing is queued. */
  async createBatch(body: unknown): Promise<CreatedBatch> {
    // The form is told by `sessions`, so a bad field is named rather than the body as a whole.
    const [listForm, countForm] = batchRequestSchema.options;
    const parsed = parseOrThrow(body !== null && typeof body === 'object' && 'sessions' in body ? listForm : countForm, body);
    let requests: SessionRequest[];
    if ('sessions' in parsed) {
      const errors: FieldError[] = [];
      requests = [];
      parsed.sessions.forEach((item, i) => {
        const r = sessionRequestSchema.safeParse(item);
        if (r.success) requests.push(r.data);
        else if (errors.length < 100) errors.push(...fieldErrors(r.error, ['sessions', i]));
      });
      if (errors.length) throw new ValidationError(errors.slice(0, 100));
    } else {
      const { agentId, version, count, participant, metadata, scheduledAt } = parsed;
      requests = Array.from({ length: count }, () => ({
        agentId,
        ...(version !== undefined ? { version } : {}),
        ...(participant ? { participant } : {}),
        ...(metadata ? { metadata } : {}),
        ...(scheduledAt ? { scheduledAt } : {}),
      }));
    }

    const unknown: FieldError[] = [];
    const field = (i: number, name: string) => ('sessions' in parsed ? `sessions.${i}.${name}` : name);
    const agentIds = [...new Set(requests.map((r) => r.agentId))];
    const missing = new Set<string>();
    const agents = new Map<string, TokenAgent>();
    await Promise.all(
      agentIds.map((id) =>
        this.d.resolver.resolve(id).then(
          (r) => agents.set(id, r.config),
          (err) => {
            if (err instanceof AgentNotFoundError) missing.add(id);
            else throw err;
          },
        ),
      ),
    );
    if (missing.size) {
      requests.forEach((r, i) => {
        if (missing.has(r.agentId) && unknown.length < 100) unknown.push({ field: field(i, 'agentId'), message: 'agent is not registered' });
      });
      throw new ValidationError(unknown);
    }
    // The versions items name, each looked up once; unknown ones fail the batch like unknown agents.
    const asked = new Map(requests.filter((r) => r.version !== undefined).map((r) => [`${r.agentId}@${r.version}`, r]));
    const missingVersions = new Set<string>();
    await Promise.all(
      [...asked].map(([key, r]) =>
        this.pinnedVersion(r.agentId, agents.get(r.agentId)!.version, r.version).catch((err) => {
          if (err instanceof AgentVersionNotFoundError) missingVersions.add(key);
          else throw err;
        }),
      ),
    );
    if (missingVersions.size) {
      requests.forEach((r, i) => {
        if (missingVersions.has(`${r.agentId}@${r.version}`) && unknown.length < 100) unknown.push({ field: field(i, 'version'), message: `agent ${JSON.stringify(r.agentId)} has no version ${r.version}` });
      });
      throw new ValidationError(unknown);
    }

    const batchId = newId('bat');
    const sessionIds = requests.map(() => newId('ses'));
    // The batch's record is on its way to MongoDB while the jobs are built (tens of ms each for 10,000);
    // the jobs are queued only once it is there.
    const recorded = this.d.store.createBatch({ _id: batchId, sessionIds, accepted: requests.length, createdAt: new Date() });
    let jobs: SessionJob[];
    try {
      await new Promise((resolve) => setImmediate(resolve)); // lets the driver send the insert first
      jobs = requests.map((r, i) => this.job(r, r.version ?? agents.get(r.agentId)!.version, batchId, parsed.callbackUrl, sessionIds[i]));
    } finally {
      await recorded;
    }
    try {
      await this.d.queue.addBulk(jobs.map((j) => ({ name: 'session', data: j, opts: this.jobOptions(j) })));
    } catch (err) {
      // Nothing of the batch was queued (addBulk is one MULTI): take its record back too.
      await this.d.store.deleteBatch(batchId).catch((e) => this.d.log?.warn({ batchId, err: (e as Error).message }, 'batch record of an unqueued batch not deleted'));
      throw err;
    }
    await this.d.store.createQueued(jobs);
    await this.announceQueued(jobs);
    this.d.metrics?.batch(jobs.length);
    const created: CreatedBatch = { batchId, accepted: jobs.length, sessionIds };
    if (!parsed.tokens) return created;
    const sessions = await Promise.all(
      jobs.map(async (job, i) => ({
        sessionId: job.sessionId,
        roomName: job.roomName,
        participantToken: await sessionToken(this.d.config, { ...job, status: 'queued' }, agents.get(job.agentId)!, requests[i]!.participant),
      })),
    );
    return { ...created, livekitUrl: this.livekitUrl, sessions };
  }

  async get(sessionId: string): Promise<SessionView> {
    const [doc, placement] = await Promise.all([this.d.store.get(sessionId), this.d.placements.get(sessionId)]);
    let view: SessionView;
    if (doc) view = sessionView(doc);
    else {
      const job = await this.d.queue.getJob(sessionId);
      if (job?.data?.sessionId !== sessionId) throw new NotFoundError(`session ${JSON.stringify(sessionId)} does not exist`);
      view = viewFromJob(job.data);
    }
    return { ...view, ...placementView(placement), ...(await this.waitingFor(view)) };
  }

  /** A session that no worker slot is free for yet says so (it goes the moment one frees). */
  private async waitingFor(v: SessionView): Promise<{ waitingFor?: 'capacity' }> {
    const c = this.d.capacity;
    if (!c || TERMINAL_STATUSES.includes(v.status) || v.status === 'active') return {};
    // Held back by a dispatcher (a first dispatch, or a placement again), or still in the queue with no slot free.
    if (await c.isWaiting(v.sessionId)) return { waitingFor: 'capacity' };
    if (v.status !== 'queued' || (v.scheduledAt && Date.parse(v.scheduledAt) > Date.now())) return {};
    return (await c.freeSlots()) <= 0 ? { waitingFor: 'capacity' } : {};
  }

  async list(q: SessionListQuery) {
    const { items, nextCursor } = await this.d.store.list(q);
    return { items: items.map(sessionView), nextCursor };
  }

  /** queued or dispatching → cancelled; dispatched or active → dispatch deleted, room closed, ended. */
  async cancel(sessionId: string): Promise<SessionView> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const doc = await this.d.store.get(sessionId);
      const job = await this.d.queue.getJob(sessionId);
      if (!doc && !job) throw new NotFoundError(`session ${JSON.stringify(sessionId)} does not exist`);
      const status: SessionStatus = doc?.status ?? 'queued';
      if (TERMINAL_STATUSES.includes(status)) throw new ConflictError(`session is already ${status}`);

      if (ENTERED_FROM.cancelled.includes(status)) {
        if (await this.d.store.transition(sessionId, 'cancelled', { failureReason: 'cancelled' }, job?.data)) {
          await job?.remove().catch(() => undefined); // an active job is left to see the cancellation itself
          return this.get(sessionId);
        }
        continue; // moved on meanwhile: look again
      }

      if (doc) await this.closeRoom(doc.roomName, doc.dispatchId);
      if (await this.d.store.transition(sessionId, 'ended', { failureReason: 'cancelled' })) return this.get(sessionId);
      // Closing the room ends the agent's job, which may record the end first (with its own reason, or none):
      // this request ended the session all the same. Only another cancel, which says so, makes this one late.
      const after = await this.d.store.get(sessionId);
      if (after && TERMINAL_STATUSES.includes(after.status) && after.failureReason !== 'cancelled') return this.get(sessionId);
    }
    throw new ConflictError('the session changed while being cancelled; retry');
  }

  /**
   * Takes the session's dispatch back and closes its room. A room LiveKit has
   * already closed is done: LiveKit answers dispatch calls for a missing room
   * with a 503, so a failure is checked against the room list before it counts.
   */
  private async closeRoom(roomName: string, dispatchId?: string): Promise<void> {
    try {
      if (dispatchId) await doneIfGone(this.d.dispatch.deleteDispatch(dispatchId, roomName));
      await doneIfGone(this.d.rooms.deleteRoom(roomName));
    } catch (err) {
      const open = await this.d.rooms.listRooms([roomName]).catch(() => undefined);
      if (open?.length === 0) return;
      throw err;
    }
  }

  async batch(batchId: string): Promise<BatchProgress> {
    const batch = await this.d.store.batch(batchId);
    if (!batch) throw new NotFoundError(`batch ${JSON.stringify(batchId)} does not exist`);
    const counts = await this.d.store.batchCounts(batch);
    return { batchId, accepted: batch.accepted, counts, done: counts.queued === 0 && counts.dispatching === 0 };
  }

  /** Cancels every session of the batch that is not dispatched yet. */
  async cancelBatch(batchId: string): Promise<{ batchId: string; cancelled: number }> {
    const batch = await this.d.store.batch(batchId, true);
    if (!batch) throw new NotFoundError(`batch ${JSON.stringify(batchId)} does not exist`);
    let cancelled = 0;
    for (let i = 0; i < batch.sessionIds.length; i += 200) {
      const ids = batch.sessionIds.slice(i, i + 200);
      const results = await Promise.all(
        ids.map(async (id) => {
          const job = await this.d.queue.getJob(id);
          const ok = await this.d.store.transition(id, 'cancelled', { failureReason: 'batch_cancelled' }, job?.data);
          if (ok) await job?.remove().catch(() => undefined);
          return ok;
        }),
      );
      cancelled += results.filter(Boolean).length;
    }
    return { batchId, cancelled };
  }
}

function tokenSessionOf(d: SessionDoc): TokenSession {
  return {
    sessionId: d._id,
    agentId: d.agentId,
    roomName: d.roomName,
    participantIdentity: d.participantIdentity,
    status: d.status,
    requestedAt: new Date(d.requestedAt).toISOString(),
    ...(d.metadata ? { metadata: d.metadata } : {}),
    ...(d.scheduledAt ? { scheduledAt: new Date(d.scheduledAt).toISOString() } : {}),
    ...(d.configVersion !== undefined ? { configVersion: d.configVersion } : {}),
  };
}
