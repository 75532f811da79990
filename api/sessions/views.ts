import { type Placement, type SessionSource, queuedRecord, type SessionDoc, type SessionJob, type SessionStatus } from '../../common/sessions/index.js';

export interface SessionView {
  sessionId: string;
  agentId: string;
  roomName: string;
  status: SessionStatus;
  participantIdentity: string;
  /** 'api': requested here; 'automatic': a user joined agent-{id}-room and an automatic worker's agent took it. */
  source: SessionSource;
  batchId?: string;
  configVersion?: number;
  dispatchId?: string;
  failureReason?: string;
  attempts: number;
  redispatches?: number;
  scheduledAt?: string;
  callbackUrl?: string;
  endedAt?: string;
  durationSeconds?: number;
  metadata?: Record<string, unknown>;
  requestedAt: string;
  updatedAt: string;
  transitions: { status: SessionStatus; at: string }[];
  /** Where the agent runs: which worker took the job and when; how often the session was placed again. */
  placement?: {
    generation: number;
    workerId?: string;
    jobId?: string;
    acceptedAt?: string;
    placedAgain: number;
    recoveries: number;
  };
  /** Set while no worker slot is free for the session. */
  waitingFor?: 'capacity';
}

/** The placement part of a session's view, once there is something to say. */
export function placementView(p: Placement): Pick<SessionView, 'placement'> {
  if (!p.jobId && p.gen === 0) return {};
  return {
    placement: {
      generation: p.gen,
      ...(p.workerId ? { workerId: p.workerId } : {}),
      ...(p.jobId ? { jobId: p.jobId } : {}),
      ...(p.acceptedAt ? { acceptedAt: new Date(p.acceptedAt).toISOString() } : {}),
      placedAgain: p.placements,
      recoveries: p.recoveries,
    },
  };
}

const iso = (d: Date | string) => new Date(d).toISOString();

export function sessionView(d: SessionDoc): SessionView {
  return {
    sessionId: d._id,
    agentId: d.agentId,
    roomName: d.roomName,
    status: d.status,
    participantIdentity: d.participantIdentity,
    source: d.source ?? 'api',
    ...(d.batchId ? { batchId: d.batchId } : {}),
    ...(d.configVersion !== undefined ? { configVersion: d.configVersion } : {}),
    ...(d.dispatchId ? { dispatchId: d.dispatchId } : {}),
    ...(d.failureReason ? { failureReason: d.failureReason } : {}),
    attempts: d.attempts ?? 0,
    ...(d.redispatches ? { redispatches: d.redispatches } : {}),
    ...(d.scheduledAt ? { scheduledAt: iso(d.scheduledAt) } : {}),
    ...(d.callbackUrl ? { callbackUrl: d.callbackUrl } : {}),
    ...(d.endedAt ? { endedAt: iso(d.endedAt) } : {}),
    ...(d.durationSeconds !== undefined ? { durationSeconds: d.durationSeconds } : {}),
    ...(d.metadata ? { metadata: d.metadata } : {}),
    requestedAt: iso(d.requestedAt),
    updatedAt: iso(d.updatedAt),
    transitions: (d.transitions ?? []).map((t) => ({ status: t.status, at: iso(t.at) })),
  };
}

/** A session whose record is not in MongoDB yet is still in its job: it is queued. */
export function viewFromJob(job: SessionJob): SessionView {
  return sessionView(queuedRecord(job));
}
