/** Baseline: a bare Express 5 app answering POST / with 202 {ok:true}; prints `READY <url>`. */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { profileOnSignal } from './profiler.js';

const profile = profileOnSignal('express');

const app = express();
app.use(express.json());
app.post('/', (_req, res) => {
  res.status(202).json({ ok: true });
});
const server: Server = await new Promise((resolve, reject) => {
  const s = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolve(s)));
});
// Same keep-alive as the API's server.
server.keepAliveTimeout = 65_000;
process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
process.once('SIGTERM', async () => {
  await profile.write();
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 3000).unref();
});
