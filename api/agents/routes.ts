import { Router } from 'express';
import { z } from 'zod';
import { rollbackBody } from '../../common/agents/index.js';
import { parseOrThrow } from '../../common/validate.js';
import { pageQuery, parseQuery } from '../http/query.js';
import type { AgentRegistry } from './registry.js';
import type { ProviderCheck } from './provider-check.js';

const versionParam = z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const versionsQuery = pageQuery.extend({ cursor: versionParam.optional() });

/** Agent-Builder's calls: thin handlers over the registry. */
export function agentRoutes(registry: AgentRegistry, providers?: ProviderCheck): Router {
  const r = Router();

  r.post('/register', async (req, res) => {
    const { config, created } = await registry.register(req.body);
    // Allowed all the same; `warnings` appears only when there is something to say.
    const warnings = (await providers?.warnings(config)) ?? [];
    res.status(created ? 201 : 200).location(`/api/agents/${encodeURIComponent(config.id)}`).json(warnings.length ? { ...config, warnings } : config);
  });

  r.get('/', async (req, res) => {
    const q = parseQuery(pageQuery, req);
    res.json(await registry.list(q.limit, q.cursor));
  });

  r.get('/:id', async (req, res) => {
    res.json(await registry.get(req.params.id));
  });

  r.patch('/:id', async (req, res) => {
    res.json(await registry.patch(req.params.id, req.body));
  });

  r.delete('/:id', async (req, res) => {
    await registry.remove(req.params.id);
    res.status(204).end();
  });

  r.get('/:id/versions', async (req, res) => {
    const q = parseQuery(versionsQuery, req);
    res.json(await registry.versions(req.params.id, q.limit, q.cursor));
  });

  r.get('/:id/versions/:version', async (req, res) => {
    const version = parseOrThrow(versionParam, req.params.version, ['version']);
    res.json(await registry.version(req.params.id, version));
  });

  r.post('/:id/rollback', async (req, res) => {
    const { version } = parseOrThrow(rollbackBody, req.body);
    res.json(await registry.rollback(req.params.id, version));
  });

  return r;
}
