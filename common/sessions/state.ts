import type { SessionStatus } from './schema.js';

/**
 * The session state machine: for each status, the statuses it may be entered
 * from. Every write is conditional on these, so a late or repeated event
 * (a retried job, a webhook arriving twice) can never move a session backwards.
 *
 *   queued ───────────────→ dispatched → active → ended
 *      │  ↘                  ↗      ↘          ↘
 *      │   dispatching ─────┘       failed     failed
 *      ↓        ↓   (an attempt failed and is retried; repeats)
 *   cancelled  cancelled
 */
export const ENTERED_FROM: Record<SessionStatus, readonly SessionStatus[]> = {
  queued: [],
  dispatching: ['queued', 'dispatching'],
  dispatched: ['queued', 'dispatching'],
  // The agent can join before the dispatch is recorded (webhooks race the dispatcher).
  active: ['queued', 'dispatching', 'dispatched'],
  ended: ['dispatching', 'dispatched', 'active'],
  failed: ['queued', 'dispatching', 'dispatched', 'active'],
  cancelled: ['queued', 'dispatching'],
};
