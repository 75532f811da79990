import type { SessionStatus } from './schema.js';

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
