import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Connection } from 'mongoose';
import { callbacksQueue, enqueueCallback, type CallbackJob } from '../callbacks.js';
import type { Logger } from '../logger.js';
import { AgentSlots } from './agent-slots.js';
import { HistoryWriter } from './history-writer.js';
import { HotRecords } from './hot-records.js';
import { Placements } from './placement.js';
import { sessionModels, type SessionDoc } from './model.js';
import type { SessionStatus } from './schema.js';
import { TERMINAL_STATUSES } from './state.js';
import { SessionStore } from './store.js';

/** The JSON a callback receives for one status change. */
export function callbackPayload(s: SessionDoc, previousStatus: SessionStatus | undefined) {
  return {
    event: 'session.status',
    sessionId: s._id,
    agentId: s.agentId,
    roomName: s.roomName,
    status: s.status,
    previousStatus: previousStatus ?? null,
    ...(s.batchId ? { batchId: s.batchId } : {}),
    ...(s.failureReason ? { failureReason: s.failureReason } : {}),
    ...(s.durationSeconds !== undefined ? { durationSeconds: s.durationSeconds } : {}),
    at: new Date(s.updatedAt).toISOString(),
  };
}

/**
 * What follows a status change, wherever it happens: a session that is over
 * gives back its agent slot and closes its placement, and its callback (if
 * any) is queued. None of these can fail the change itself.
 */
export function wireSessionEffects(store: SessionStore, o: { slots: AgentSlots; placements: Placements; callbacks: Queue<CallbackJob>; logger: Logger }): void {
  store.onTransition(async (doc, from) => {
    if (TERMINAL_STATUSES.includes(doc.status)) {
      await o.slots.release(doc.agentId, doc._id).catch((err) => o.logger.warn({ err: (err as Error).message }, 'agent slot not released'));
      // No job of the session may be taken from now on, and its worker no longer holds it.
      await o.placements.finish(doc._id).catch((err) => o.logger.warn({ sessionId: doc._id, err: (err as Error).message }, 'placement not closed'));
    }
    if (doc.callbackUrl) {
      await enqueueCallback(o.callbacks, doc.callbackUrl, callbackPayload(doc, from)).catch((err) =>
        o.logger.warn({ sessionId: doc._id, err: (err as Error).message }, 'callback not queued'),
      );
    }
  });
}

export interface SessionRecords {
  store: SessionStore;
  /** Writes the sessions' history to MongoDB once started (API and dispatcher start it). */
  history: HistoryWriter;
  slots: AgentSlots;
  placements: Placements;
  callbacks: Queue<CallbackJob>;
}

export interface SessionRecordOptions {
  /** Seconds a session's record stays in Redis once it is over and in MongoDB (SESSION_HOT_TTL). */
  hotTtlSeconds?: number;
  onFlush?(sessions: number, seconds: number): void;
}

/**
 * The session store every service uses (API, dispatcher, worker): running
 * sessions in Redis, their history in MongoDB, and the effects of a move
 * wired in, so a status change behaves the same wherever it is made.
 */
export async function sessionRecords(
  mongo: Connection,
  redis: Redis,
  prefix: string,
  logger: Logger,
  agentName: string,
  o: SessionRecordOptions = {},
): Promise<SessionRecords> {
  const models = await sessionModels(mongo);
  const hot = new HotRecords(redis, prefix);
  const store = new SessionStore(hot, models);
  const history = new HistoryWriter(redis, hot, models, logger, {
    hotTtlMs: (o.hotTtlSeconds ?? 86_400) * 1000,
    ...(o.onFlush ? { onFlush: o.onFlush } : {}),
  });
  store.useWriter(history);
  const slots = new AgentSlots(redis, prefix);
  const placements = new Placements(redis, prefix, agentName);
  const callbacks = callbacksQueue(redis, prefix);
  callbacks.on('error', (err) => logger.debug({ err: err.message }, 'callbacks queue error'));
  wireSessionEffects(store, { slots, placements, callbacks, logger });
  return { store, history, slots, placements, callbacks };
}
