import type { JobRequest } from '@livekit/agents';
import type { Logger } from '../common/logger.js';
import { AGENT_ATTRIBUTE, GENERATION_ATTRIBUTE, newId, type Placements, SESSION_ATTRIBUTE, SOURCE_ATTRIBUTE, WORKER_ATTRIBUTE } from '../common/sessions/index.js';
import type { AutomaticRooms } from './automatic-rooms.js';
import { jobTarget } from './job-target.js';
import type { WorkerPresence } from './presence.js';

export interface JobRequestDeps {
  presence: WorkerPresence;
  placements: Placements;
  log: Logger;
  /** A session's job was taken: seconds since the session was requested. */
  onAccepted?(secondsSinceRequest: number): void;
  /** AGENT_DISPATCH=automatic: LiveKit offers every new room; these are the ones to take. */
  automatic?: AutomaticRooms;
}

/**
 * Answers LiveKit's offer of a job, before any process is given to it. Takes
 * the job only with a free slot, and for a session only by claiming it in
 * Redis (common/sessions/placement.ts): that records that the job was taken,
 * and refuses a job of a session that another job already serves, that was
 * placed again since this dispatch, or that is over. A refused job goes to
 * the next worker; one no worker takes is placed again by the dispatcher.
 */
export function jobRequestHandler(d: JobRequestDeps) {
  if (d.automatic) return automaticJobRequestHandler(d, d.automatic);
  return async (req: JobRequest): Promise<void> => {
    const target = jobTarget(req.job.metadata, req.room?.name);
    const log = d.log.child({ jobId: req.id, sessionId: target.sessionId, generation: target.generation });
    if (d.presence.free <= 0) {
      log.info('no free job slot: job declined');
      await req.reject();
      return;
    }
    d.presence.hold(req.id);
    if (target.sessionId) {
      let claimed: string;
      try {
        claimed = await d.placements.claim({
          sessionId: target.sessionId,
          gen: target.generation,
          jobId: req.id,
          workerId: d.presence.id,
          free: d.presence.free,
        });
      } catch (err) {
        // Without the claim nothing stops a second agent; the dispatcher places the session again once Redis is back.
        claimed = 'unavailable';
        log.warn({ err: (err as Error).message }, 'job not claimed: Redis unreachable');
      }
      if (claimed !== 'ok') {
        d.presence.unhold(req.id);
        log.info({ claimed }, 'job declined');
        await req.reject();
        return;
      }
      d.presence.holdSession(req.id, target.sessionId);
      if (target.requestedAt) d.onAccepted?.((Date.now() - target.requestedAt) / 1000);
    }
    d.presence.changed();
    // The agent participant names its session, agent, worker and placement from the moment it joins.
    await req.accept('', '', '', {
      [SESSION_ATTRIBUTE]: target.sessionId ?? '',
      [AGENT_ATTRIBUTE]: target.agentId ?? '',
      [WORKER_ATTRIBUTE]: d.presence.id,
      [GENERATION_ATTRIBUTE]: String(target.generation),
    });
    log.info('job accepted');
  };
}

/**
 * Answers an automatic job offer (a new room, no dispatch metadata): takes it
 * only for a room of an existing agent that no session of this API owns, and
 * with a free slot. The session it starts is named here, on the agent
 * participant's attributes, where the job process and the webhook read it.
 */
function automaticJobRequestHandler(d: JobRequestDeps, rooms: AutomaticRooms) {
  return async (req: JobRequest): Promise<void> => {
    const log = d.log.child({ jobId: req.id, room: req.room?.name });
    if (d.presence.free <= 0) {
      log.info('no free job slot: job declined');
      await req.reject();
      return;
    }
    d.presence.hold(req.id);
    const verdict = await rooms.verdict(req.room).catch((err: Error) => {
      log.warn({ err: err.message }, 'room not checked');
      return { take: false as const, reason: 'config_unavailable' as const };
    });
    if (!verdict.take) {
      d.presence.unhold(req.id);
      log.info({ reason: verdict.reason }, 'room not for an automatic agent: job declined');
      await req.reject();
      return;
    }
    const sessionId = newId('ses');
    d.presence.holdSession(req.id, sessionId);
    d.presence.changed();
    await req.accept('', '', '', {
      [SESSION_ATTRIBUTE]: sessionId,
      [AGENT_ATTRIBUTE]: verdict.agentId,
      [WORKER_ATTRIBUTE]: d.presence.id,
      [GENERATION_ATTRIBUTE]: '0',
      [SOURCE_ATTRIBUTE]: 'automatic',
    });
    log.info({ sessionId, agentId: verdict.agentId }, 'job accepted');
  };
}
