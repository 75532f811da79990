import { Router } from 'express';
import { z } from 'zod';
import { ID_PATTERN, sessionListQuery } from '../../common/sessions/index.js';
import { parseOrThrow } from '../../common/validate.js';
import { parseQuery } from '../http/query.js';
import type { IdempotencyKeys } from './idempotency.js';
import type { SessionService } from './service.js';

export const idParam = z.string().regex(ID_PATTERN, 'not an id of this service');

export function sessionRoutes(sessions: SessionService, idempotency: IdempotencyKeys): Router {
  const r = Router();

  r.post('/', async (req, res) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return res.status(202).json(await sessions.create(req.body));
    const out = await idempotency.run(String(res.locals.apiKeyId), key, req.body, async () => ({ status: 202, body: await sessions.create(req.body) }));
    if (out.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(out.status).json(out.body);
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
