import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Connection } from 'mongoose';
import { callbacksQueue, enqueueCallback, type CallbackJob } from '../callbacks.js';
import type { Logger } from '../logger.js';
import { AgentSlots } from './agent-slots.js';
import { sessionLock } from './lock.js';
import { Placements } from './placement.js';
import { sessionModels, type SessionDoc, type SessionModels } from './model.js';
import { TERMINAL_STATUSES, type SessionStatus } from './schema.js';
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
  models: SessionModels;
  slots: AgentSlots;
  placements: Placements;
  callbacks: Queue<CallbackJob>;
}

/**
 * The session store every service uses (API, dispatcher, worker): records in
 * MongoDB, moves serialised by a per-session Redis lock, and the effects of a
 * move wired in, so a status change behaves the same wherever it is made.
 */
export async function sessionRecords(mongo: Connection, redis: Redis, prefix: string, logger: Logger, agentName: string): Promise<SessionRecords> {
  const models = await sessionModels(mongo);
  const store = new SessionStore(models, sessionLock(redis, prefix));
  const slots = new AgentSlots(redis, prefix);
  const placements = new Placements(redis, prefix, agentName);
  const callbacks = callbacksQueue(redis, prefix);
  callbacks.on('error', (err) => logger.debug({ err: err.message }, 'callbacks queue error'));
  wireSessionEffects(store, { slots, placements, callbacks, logger });
  return { store, models, slots, placements, callbacks };
}
