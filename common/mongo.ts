import mongoose, { type Connection } from 'mongoose';

export type { Connection };

/**
 * A mongoose connection of its own (not the global default), so tests and
 * services can hold several. Short selection timeouts make a down server an
 * error within a second or two instead of a hang.
 */
export async function connectMongo(uri: string, dbName?: string): Promise<Connection> {
  const conn = mongoose.createConnection(uri, {
    ...(dbName ? { dbName } : {}),
    serverSelectionTimeoutMS: 2000,
    connectTimeoutMS: 2000,
    socketTimeoutMS: 10_000,
    maxPoolSize: 20,
    // FerretDB v1 has no retryable writes (no sessions/transactions).
    retryWrites: false,
  });
  await conn.asPromise();
  return conn;
}

/** MongoDB's duplicate-key error (E11000): the `_id` (or a unique index) is taken. */
export const isDuplicateKey = (err: unknown): boolean => (err as { code?: number })?.code === 11000;
