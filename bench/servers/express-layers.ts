/**
 * Bare Express plus the API's own HTTP layers for POST /api/sessions, mounted
 * as api/app.ts mounts them (metrics, helmet, API key check, JSON body) and
 * the participant token the 202 carries, but no Redis, queue or session
 * record: what the request costs before any of the API's work in Redis.
 * Prints `READY <url>`.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import helmet from 'helmet';
import { requireApiKey } from '../../api/http/auth.js';
import { jsonBody } from '../../api/http/json-body.js';
import { apiMetrics } from '../../api/http/metrics.js';
import { sessionToken } from '../../api/sessions/participant-token.js';
import { buildRoomName, newRoomSuffix } from '../../common/rooms.js';
import { newId } from '../../common/sessions/index.js';
import { BENCH_API_KEY } from '../lib/env.js';
import { profileOnSignal } from './profiler.js';

const profile = profileOnSignal('layers');
const tokens = { LIVEKIT_API_KEY: 'bench-key', LIVEKIT_API_SECRET: 'bench-secret-of-at-least-thirty-two-chars', PARTICIPANT_TOKEN_TTL: 900, DISPATCH_MODE: 'immediate', AGENT_NAME: 'bench' } as const;

const app = express();
app.disable('x-powered-by');
app.use(apiMetrics().middleware);
app.use(helmet());
app.use('/api', requireApiKey([BENCH_API_KEY]));
app.use('/api/sessions', ...jsonBody('64kb'));
app.post('/api/sessions', async (req, res) => {
  const agentId = String((req.body as { agentId?: unknown }).agentId);
  const sessionId = newId('ses');
  const roomName = buildRoomName(agentId, newRoomSuffix());
  const job = { sessionId, agentId, roomName, participantIdentity: `user-${sessionId.slice(4)}`, requestedAt: new Date().toISOString(), configVersion: 1 };
  const participantToken = await sessionToken(tokens, { ...job, status: 'queued' }, { version: 1 });
  res.status(202).json({ sessionId, agentId, roomName, status: 'queued', livekitUrl: 'ws://127.0.0.1:7880', participantToken });
});
const server: Server = await new Promise((resolve, reject) => {
  const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
});
server.keepAliveTimeout = 65_000;
process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
process.once('SIGTERM', async () => {
  await profile.write();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 3000).unref();
});
