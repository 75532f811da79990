import { SESSION_STATUSES, type SessionStatus } from './schema.js';

/**
 * The session state machine: for each status, the statuses it may be entered
 * from. Every write is conditional on these, so a late or repeated event
 * (a retried job, a webhook arriving twice) can never move a session backwards.
 *
 *   queued ───────────────→ dispatched → active ⇄ recovering → ended
 *      │  ↘                  ↗      ↘          ↘           ↘
 *      │   dispatching ─────┘       failed     failed      failed
 *      ↓        ↓   (an attempt failed and is retried; repeats)
 *   cancelled  cancelled
 *
 * `recovering`: the agent vanished (its worker died) while the user is still
 * in the room; a new agent is on its way and continues the conversation.
 */
export const ENTERED_FROM: Record<SessionStatus, readonly SessionStatus[]> = {
  queued: [],
  dispatching: ['queued', 'dispatching'],
  dispatched: ['queued', 'dispatching'],
  // The agent can join before the dispatch is recorded (webhooks race the dispatcher).
  active: ['queued', 'dispatching', 'dispatched', 'recovering'],
  recovering: ['active'],
  ended: ['dispatching', 'dispatched', 'active', 'recovering'],
  failed: ['queued', 'dispatching', 'dispatched', 'active', 'recovering'],
  cancelled: ['queued', 'dispatching'],
};

// The groups of statuses the code asks about, named once here rather than restated where they are used.

/** A session in one of these is over: no move leaves them. */
export const TERMINAL_STATUSES: readonly SessionStatus[] = ['ended', 'failed', 'cancelled'];
export const OPEN_STATUSES: readonly SessionStatus[] = SESSION_STATUSES.filter((s) => !TERMINAL_STATUSES.includes(s));
/** Statuses in which a later generation is still wanted: an agent is on its way or being replaced. */
export const PLACEABLE_STATUSES: readonly SessionStatus[] = ['dispatched', 'recovering'];
/** Sessions whose dispatch went through and that did not fail: the ones dispatch latency is sampled from. */
export const DISPATCHED_STATUSES: readonly SessionStatus[] = ['dispatched', 'active', 'ended'];
