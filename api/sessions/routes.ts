import { type Request, type Response, Router } from 'express';
import { z } from 'zod';
import { ID_PATTERN, sessionListQuery } from '../../common/sessions/index.js';
import { parseOrThrow } from '../../common/validate.js';
import { parseQuery } from '../http/query.js';
import type { IdempotencyKeys } from './idempotency.js';
import type { SessionService } from './service.js';

export const idParam = z.string().regex(ID_PATTERN, 'not an id of this service');

export function sessionRoutes(sessions: SessionService, idempotency: IdempotencyKeys): Router {
  const r = Router();

  /** Answers with `fn`'s result; with an Idempotency-Key, a repeat gets the first answer back. */
  const idempotent = async (req: Request, res: Response, status: number, scope: string, fn: () => Promise<unknown>) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return res.status(status).json(await fn());
    const out = await idempotency.run(scope, key, req.body, async () => ({ status, body: await fn() }));
    if (out.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(out.status).json(out.body);
  };

  r.post('/', async (req, res) => {
    await idempotent(req, res, 202, String(res.locals.apiKeyId), () => sessions.create(req.body));
  });

  r.post('/:id/token', async (req, res) => {
    const id = parseOrThrow(idParam, req.params.id, ['id']);
    // Scoped to the session too: one key with the same body (often none) for two sessions is two requests.
    await idempotent(req, res, 200, `${String(res.locals.apiKeyId)}:token:${id}`, () => sessions.token(id, req.body));
  });

  r.post('/batch', async (req, res) => {
    res.status(202).json(await sessions.createBatch(req.body));
  });

  r.get('/', async (req, res) => {
    res.json(await sessions.list(parseQuery(sessionListQuery, req)));
  });

  r.get('/:id', async (req, res) => {
    res.json(await sessions.get(parseOrThrow(idParam, req.params.id, ['id'])));
  });

  r.delete('/:id', async (req, res) => {
    res.json(await sessions.cancel(parseOrThrow(idParam, req.params.id, ['id'])));
  });

  return r;
}
