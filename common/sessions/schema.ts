import { z } from 'zod';
import { agentIdSchema, agentVersionSchema } from '../agents/index.js';
import { metadataSchema } from '../schemas/json.js';

/** The session request contract: body of POST /api/sessions and of each batch item. */

/** Who started a session: a request to this API, or a user joining agent-{id}-room served by an automatic worker. */
export const SESSION_SOURCES = ['api', 'automatic'] as const;
export type SessionSource = (typeof SESSION_SOURCES)[number];

export const SESSION_STATUSES = ['queued', 'dispatching', 'dispatched', 'active', 'recovering', 'ended', 'failed', 'cancelled'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/** LiveKit room names: what the server accepts, minus characters that make trouble in URLs and logs. */
export const roomNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,128}$/, '1-128 characters of A-Z a-z 0-9 _ . -')
  .describe('join this room instead of a new agent-{id}-room-{suffix}');

export const participantSchema = z.strictObject({
  identity: z.string().regex(/^[A-Za-z0-9_.@+-]{1,128}$/, '1-128 characters of A-Z a-z 0-9 _ . @ + -').optional(),
  name: z.string().trim().min(1).max(200).optional(),
  metadata: z.string().max(8192, 'at most 8192 characters').optional().describe('LiveKit participant metadata (a string)'),
});

const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 3600 * 1000;

export const scheduledAtSchema = z.iso
  .datetime({ offset: true })
  .refine((v) => Date.parse(v) - Date.now() <= MAX_SCHEDULE_AHEAD_MS, 'at most 30 days ahead')
  .describe('start the session at this time (ISO 8601); a past time means now');

export const callbackUrlSchema = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .describe('every status change is POSTed here as signed JSON');

/** A session runs the config version it was asked with, whatever the agent becomes before it starts. */
export const sessionVersionSchema = agentVersionSchema.describe("run this version of the agent's config; default: its current version");

export const sessionRequestSchema = z.strictObject({
  agentId: agentIdSchema,
  version: sessionVersionSchema.optional(),
  participant: participantSchema.optional(),
  roomName: roomNameSchema.optional(),
  metadata: metadataSchema.optional(),
  scheduledAt: scheduledAtSchema.optional(),
  callbackUrl: callbackUrlSchema.optional(),
});
export type SessionRequest = z.output<typeof sessionRequestSchema>;

/** Body of POST /api/sessions/:id/token (optional): who joins, by default the session's own participant. */
export const tokenRequestSchema = z.strictObject({
  participant: participantSchema.optional(),
});

export const MAX_BATCH = 10_000;

const batchTokensSchema = z
  .boolean()
  .optional()
  .describe('answer with a participant token for every session (`sessions` of the response, in order)');

export const batchRequestSchema = z.union([
  z.strictObject({
    sessions: z.array(z.unknown()).min(1, 'at least one session').max(MAX_BATCH, `at most ${MAX_BATCH} sessions`),
    callbackUrl: callbackUrlSchema.optional().describe('default callbackUrl of every item'),
    tokens: batchTokensSchema,
  }),
  z.strictObject({
    agentId: agentIdSchema,
    version: sessionVersionSchema.optional(),
    count: z.number().int().min(1).max(MAX_BATCH),
    participant: participantSchema.omit({ identity: true }).optional(),
    metadata: metadataSchema.optional(),
    scheduledAt: scheduledAtSchema.optional(),
    callbackUrl: callbackUrlSchema.optional(),
    tokens: batchTokensSchema,
  }),
]);

export const sessionListQuery = z.object({
  agentId: agentIdSchema.optional(),
  status: z.enum(SESSION_STATUSES).optional(),
  batchId: z.string().max(64).optional(),
  source: z.enum(SESSION_SOURCES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(64).optional(),
});

/**
 * What the queue carries for one session: everything the dispatcher needs,
 * nothing it must look up. The API builds it; the dispatcher parses every job
 * it takes against this (a malformed one fails for good, with the reason).
 */
export const sessionJobSchema = z.object({
  sessionId: z.string().regex(/^ses_[0-9a-z]{21}$/),
  agentId: agentIdSchema,
  roomName: roomNameSchema,
  participantIdentity: z.string().min(1).max(128),
  metadata: z.record(z.string(), z.unknown()).optional(),
  batchId: z.string().regex(/^bat_[0-9a-z]{21}$/).optional(),
  scheduledAt: z.iso.datetime({ offset: true }).optional(),
  callbackUrl: z.string().optional(),
  requestedAt: z.iso.datetime({ offset: true }),
  /**
   * The agent's config version the session runs, fixed when it was asked for.
   * Jobs queued before jobs carried it have none: they run the current one.
   */
  configVersion: agentVersionSchema.optional(),
  /**
   * The placement generation this job dispatches (common/sessions/placement.ts).
   * Unset for a session's first dispatch, which creates its room; a later one
   * (LiveKit dropped the job, the worker died, the agent never joined) replaces
   * the room's earlier dispatches.
   */
  generation: z.number().int().min(0).optional(),
  /** Set on the job that places a session again because its agent never joined: the count to record. */
  redispatches: z.number().int().min(1).optional(),
  /** Set on the record of a session an automatically dispatched agent started (no request, no job). */
  source: z.literal('automatic').optional(),
});
export type SessionJob = z.infer<typeof sessionJobSchema>;
