import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { toAppError, UnavailableError } from '../common/errors.js';
import { classifyLivekitError } from '../common/livekit.js';
import type { Logger } from '../common/logger.js';
import { sessionJobSchema, type SessionJob, type SessionStore } from '../common/sessions/index.js';
import { GateClosedError } from './capacity-gate.js';
import { dispatchSession, type DispatchDeps, type Outcome } from './dispatch-session.js';
import type { dispatcherMetrics } from './metrics.js';

export interface SessionJobProcessorDeps {
  dispatch: DispatchDeps;
  store: SessionStore;
  metrics: ReturnType<typeof dispatcherMetrics>;
  log: Logger;
  /** What follows a dispatch or a placement (the placement or join check). */
  followUp(job: SessionJob): Promise<unknown>;
  /** Holds the whole queue back after LiveKit answered 429 (the BullMQ worker's rateLimit). */
  rateLimit(ms: number): Promise<void>;
}

/**
 * The sessions queue's processor, the dispatcher's edge: parses the job,
 * dispatches it (dispatch-session.ts), and translates what comes back into
 * BullMQ's terms: done, look again shortly (busy, at capacity), back to the
 * queue (the dispatcher is stopping), retry with backoff (a dependency is
 * away, LiveKit failed transiently), slow down (LiveKit's 429), or fail for
 * good with the reason recorded (a malformed job, a permanent LiveKit error,
 * the last attempt).
 */
export function sessionJobProcessor(d: SessionJobProcessorDeps) {
  return async (job: Job<SessionJob>, token?: string): Promise<Outcome> => {
    const valid = sessionJobSchema.safeParse(job.data);
    if (!valid.success) {
      // Not a job this API made (or made by an incompatible version): it fails for good, saying why.
      const reason = `malformed session job: ${valid.error.issues.map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`).join('; ')}`;
      d.metrics.outcomes.inc({ result: 'failed', reason: 'malformed_job' });
      d.log.warn({ jobId: job.id, reason }, 'session job refused');
      throw new UnrecoverableError(reason);
    }
    const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (job.attemptsMade === 0) d.metrics.queueWait.observe(Math.max(0, Date.now() - job.timestamp - (job.opts.delay ?? 0)) / 1000);
    const timer = d.metrics.dispatchDuration.startTimer();
    try {
      const outcome = await dispatchSession(job.data, d.dispatch, job.attemptsMade + 1);
      if (outcome.result !== 'busy' && outcome.result !== 'at-capacity') timer();
      d.metrics.outcomes.inc({ result: outcome.result, reason: outcome.result === 'failed' ? outcome.reason : outcome.result === 'skipped' ? outcome.status : '' });
      if (outcome.result === 'dispatched') d.metrics.stages.observe({ stage: 'dispatched' }, (Date.now() - Date.parse(job.data.requestedAt)) / 1000);
      if (outcome.result === 'busy' || outcome.result === 'at-capacity') {
        // Another process is dispatching this session, or its agent is at its cap: the session
        // stays queued and is looked at again shortly.
        await job.moveToDelayed(Date.now() + (outcome.result === 'busy' ? 1000 : 500), token);
        throw new DelayedError();
      }
      if (outcome.result === 'dispatched' || outcome.result === 'placed') await d.followUp(job.data);
      d.log.debug({ sessionId: job.data.sessionId, generation: job.data.generation ?? 0, ...outcome }, 'session processed');
      return outcome;
    } catch (err) {
      if (err instanceof DelayedError || err instanceof UnrecoverableError || err instanceof WaitingError) throw err;
      if (err instanceof GateClosedError) {
        // Stopping while the session waited for a slot: back to the head of the queue for another dispatcher.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (toAppError(err) instanceof UnavailableError) {
        d.metrics.retries.inc({ reason: 'dependency_unavailable' });
        d.log.warn({ sessionId: job.data.sessionId, attempt: job.attemptsMade + 1 }, 'dependency unavailable; will retry');
        throw err;
      }
      const c = classifyLivekitError(err);
      if (c.kind === 'rate-limited') {
        d.metrics.retries.inc({ reason: 'livekit_rate_limited' });
        await d.rateLimit(c.retryAfterMs);
        throw Worker.RateLimitError();
      }
      const reason = c.kind === 'permanent' ? c.reason : 'livekit_unavailable';
      if (c.kind === 'permanent' || lastTry) {
        await d.store
          .transition(job.data.sessionId, 'failed', { failureReason: reason }, job.data)
          .catch((e: Error) => d.log.warn({ sessionId: job.data.sessionId, err: e.message }, 'failure not recorded'));
        d.metrics.outcomes.inc({ result: 'failed', reason });
        d.log.warn({ sessionId: job.data.sessionId, reason }, 'session failed');
        throw new UnrecoverableError(reason);
      }
      d.metrics.retries.inc({ reason });
      // The record says a dispatch is under way and how many attempts it took so far.
      await d.store
        .transition(job.data.sessionId, 'dispatching', { attempts: job.attemptsMade + 1 }, job.data)
        .catch((e: Error) => d.log.warn({ sessionId: job.data.sessionId, err: e.message }, 'retry not recorded'));
      d.log.info({ sessionId: job.data.sessionId, attempt: job.attemptsMade + 1, err: (err as Error).message }, 'livekit error; will retry');
      throw err;
    }
  };
}
