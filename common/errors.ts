/**
 * One error type for the whole system. HTTP status and problem type are
 * decided where the error is made; the edges (Express, BullMQ processors,
 * the agent entry) only translate it.
 */
export interface FieldError {
  field: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly problem: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = this.constructor.name;
  }
}

export class ValidationError extends AppError {
  constructor(readonly errors: FieldError[]) {
    super(400, 'validation-error', errors.map((e) => `${e.field || '(body)'}: ${e.message}`).join('; '), { errors });
  }
}

export class NotFoundError extends AppError {
  constructor(message: string, extra: Record<string, unknown> = {}) {
    super(404, 'not-found', message, extra);
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super(409, 'conflict', message);
  }
}

/** A dependency (Redis, MongoDB, LiveKit) cannot be reached; the caller may retry. */
export class UnavailableError extends AppError {
  constructor(readonly dependency: 'redis' | 'mongodb' | 'livekit', options?: { cause?: unknown }) {
    super(503, 'dependency-unavailable', `${dependency} is unreachable; retry shortly`, { dependency }, options);
  }
}

/** The agent id resolves to nothing (never registered, or deleted). */
export class AgentNotFoundError extends NotFoundError {
  constructor(readonly agentId: string) {
    super(`agent ${JSON.stringify(agentId)} is not registered`);
  }
}

/**
 * The agent has no config at this version: never written, or one that records
 * a deletion. Wherever a caller names a version it does so in a field called
 * `version` (a session request, a rollback, the versions path), so the problem
 * names that field.
 */
export class AgentVersionNotFoundError extends NotFoundError {
  constructor(
    readonly agentId: string,
    readonly version: number,
  ) {
    const message = `agent ${JSON.stringify(agentId)} has no version ${version}`;
    super(message, { errors: [{ field: 'version', message: `no version ${version} of this agent` }] });
  }
}

const MONGO_DOWN = /MongoServerSelectionError|MongooseServerSelectionError|MongoNetworkError|MongoNetworkTimeoutError|MongoNotConnectedError|MongoTopologyClosedError|MongoPoolClearedError/;

/** MongoDB driver errors that mean "the server is away", as opposed to a bad operation. */
export function isMongoUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return MONGO_DOWN.test(err.name) || MONGO_DOWN.test(err.constructor?.name ?? '') || /buffering timed out|connection .* closed|ECONNREFUSED/i.test(err.message);
}

/** ioredis errors raised while Redis is away (offline queue disabled, retries spent, connection refused). */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Stream isn't writeable|Connection is closed|ECONNREFUSED|ETIMEDOUT|ECONNRESET|enableOfflineQueue|Reached the max retries/i.test(err.message)
  );
}

/**
 * The error as this system's own, where it is one: an AppError as it is, an
 * outage of Redis or MongoDB as an UnavailableError (503, retry); undefined for
 * anything else (a bug, or a LiveKit error: common/livekit.ts classifies those).
 * The edges call this — the HTTP error handler, the dispatcher's job
 * processor, the worker's job entry — so services throw what they meet.
 */
export function toAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (isRedisUnavailable(err)) return new UnavailableError('redis', { cause: err });
  if (isMongoUnavailable(err)) return new UnavailableError('mongodb', { cause: err });
  return undefined;
}
