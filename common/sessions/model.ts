import { Schema, type Connection, type Model } from 'mongoose';
import type { SessionSource, SessionStatus } from './schema.js';

export interface Transition {
  status: SessionStatus;
  at: Date;
}

export interface SessionDoc {
  _id: string;
  agentId: string;
  roomName: string;
  participantIdentity: string;
  status: SessionStatus;
  transitions: Transition[];
  metadata?: Record<string, unknown>;
  batchId?: string;
  /** Absent: 'api'. */
  source?: SessionSource;
  configVersion?: number;
  dispatchId?: string;
  failureReason?: string;
  attempts: number;
  redispatches?: number;
  scheduledAt?: Date;
  callbackUrl?: string;
  endedAt?: Date;
  durationSeconds?: number;
  requestedAt: Date;
  updatedAt: Date;
}

export interface BatchDoc {
  _id: string;
  sessionIds: string[];
  accepted: number;
  createdAt: Date;
}

const sessionSchema = new Schema<SessionDoc>(
  {
    _id: { type: String, required: true },
    agentId: { type: String, required: true },
    roomName: { type: String, required: true },
    participantIdentity: { type: String, required: true },
    status: { type: String, required: true },
    transitions: [{ _id: false, status: String, at: Date }],
    metadata: { type: Schema.Types.Mixed },
    batchId: { type: String },
    source: { type: String },
    configVersion: { type: Number },
    dispatchId: { type: String },
    failureReason: { type: String },
    attempts: { type: Number, default: 0 },
    redispatches: { type: Number },
    scheduledAt: { type: Date },
    callbackUrl: { type: String },
    endedAt: { type: Date },
    durationSeconds: { type: Number },
    requestedAt: { type: Date, required: true },
    updatedAt: { type: Date, required: true },
  },
  { collection: 'sessions', versionKey: false, minimize: true },
);
sessionSchema.index({ agentId: 1, _id: 1 });
sessionSchema.index({ status: 1, _id: 1 });
sessionSchema.index({ batchId: 1, status: 1 });
sessionSchema.index({ roomName: 1, status: 1 });

const batchSchema = new Schema<BatchDoc>(
  {
    _id: { type: String, required: true },
    sessionIds: [String],
    accepted: { type: Number, required: true },
    createdAt: { type: Date, required: true },
  },
  { collection: 'batches', versionKey: false },
);

export interface SessionModels {
  Session: Model<SessionDoc>;
  Batch: Model<BatchDoc>;
}

export async function sessionModels(conn: Connection): Promise<SessionModels> {
  const Session = (conn.models.Session ?? conn.model<SessionDoc>('Session', sessionSchema)) as Model<SessionDoc>;
  const Batch = (conn.models.Batch ?? conn.model<BatchDoc>('Batch', batchSchema)) as Model<BatchDoc>;
  await Promise.all([Session.init(), Batch.init()]);
  return { Session, Batch };
}
