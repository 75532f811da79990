import { Router } from 'express';
import { parseOrThrow } from '../../common/validate.js';
import type { SessionService } from '../sessions/service.js';
import { idParam } from '../sessions/routes.js';

const POLL_MS = 500;
const MAX_STREAM_MS = 60 * 60 * 1000;

export function batchRoutes(sessions: SessionService): Router {
  const r = Router();

  r.get('/:id', async (req, res) => {
    res.json(await sessions.batch(parseOrThrow(idParam, req.params.id, ['id'])));
  });

  /** Server-sent events: `progress` while sessions are pending, then one `done`. */
  r.get('/:id/events', async (req, res) => {
    const id = parseOrThrow(idParam, req.params.id, ['id']);
    let progress = await sessions.batch(id); // 404 before the stream starts
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let open = true;
    req.on('close', () => (open = false));
    const until = Date.now() + MAX_STREAM_MS;
    while (open && Date.now() < until) {
      res.write(`event: ${progress.done ? 'done' : 'progress'}\ndata: ${JSON.stringify(progress)}\n\n`);
      if (progress.done) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      try {
        progress = await sessions.batch(id);
      } catch {
        res.write(`event: error\ndata: {"detail":"progress unavailable; reconnect"}\n\n`);
        break;
      }
    }
    res.end();
  });

  r.delete('/:id', async (req, res) => {
    res.json(await sessions.cancelBatch(parseOrThrow(idParam, req.params.id, ['id'])));
  });

  return r;
}
