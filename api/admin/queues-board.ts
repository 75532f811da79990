import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import { Router, type RequestHandler } from 'express';
import helmet from 'helmet';

export const QUEUES_BOARD_PATH = '/admin/queues';

/**
 * Bull Board over the system's queues, read-only: sessions, their checks and
 * callbacks change state only through the API and the dispatcher (a job
 * removed here would leave its session queued for ever). The caller puts the
 * admin key check in front.
 */
export function queuesBoard(queues: Queue[]): Router {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(QUEUES_BOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: true })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Agent Runtime queues' } },
  });
  const r = Router();
  // The board's page links a web font from a CDN; everything it shows is served from here, so the
  // link is dropped and the policy allows nothing from elsewhere (helmet's default lets https: styles in).
  r.use(helmet({ contentSecurityPolicy: { directives: { 'style-src': ["'self'", "'unsafe-inline'"], 'font-src': ["'self'", 'data:'], 'upgrade-insecure-requests': null } } }));
  r.use(withoutExternalLinks);
  r.use(adapter.getRouter() as Router);
  return r;
}

/** Removes <link> tags pointing off this server from HTML the board renders. */
const withoutExternalLinks: RequestHandler = (_req, res, next) => {
  const send = res.send.bind(res);
  res.send = (body?: unknown) => {
    if (typeof body === 'string' && body.startsWith('<!DOCTYPE html')) body = body.replace(/<link[^>]+href="https?:\/\/[^"]*"[^>]*>/g, '');
    return send(body);
  };
  next();
};
