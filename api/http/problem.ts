import type { ErrorRequestHandler, Response } from 'express';
import { toAppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';

/** RFC 9457 problem details. `type` is a URN: stable, and no host to resolve. */
export function sendProblem(res: Response, status: number, problem: string, title: string, detail: string, extra: Record<string, unknown> = {}) {
  res
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: `urn:agent-runtime:problem:${problem}`, title, status, detail, ...extra }));
}

const TITLES: Record<number, string> = {
  400: 'Invalid request',
  401: 'Unauthorized',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request body too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
  503: 'Service unavailable',
};

/** body-parser's own errors carry `type` and `status`; they are the client's fault. */
interface ParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) return;
    const app = toAppError(err);
    if (app) {
      if (app.status === 503) {
        res.setHeader('Retry-After', '2');
        logger.warn({ dependency: app.extra.dependency, route: req.route?.path, cause: (app.cause as Error | undefined)?.message }, 'dependency unavailable');
      }
      return sendProblem(res, app.status, app.problem, TITLES[app.status] ?? 'Error', app.message, app.extra);
    }
    const pe = err as ParserError;
    if (pe.type === 'entity.too.large') return sendProblem(res, 413, 'body-too-large', TITLES[413]!, 'the request body is over the size limit');
    if (pe.type === 'entity.parse.failed') return sendProblem(res, 400, 'malformed-json', TITLES[400]!, 'the body is not valid JSON');
    if (pe.type === 'encoding.unsupported' || pe.type === 'charset.unsupported') {
      return sendProblem(res, 415, 'unsupported-encoding', TITLES[415]!, 'unsupported content encoding or charset');
    }
    if (typeof pe.status === 'number' && pe.status >= 400 && pe.status < 500 && pe.expose) {
      return sendProblem(res, pe.status, 'bad-request', TITLES[pe.status] ?? 'Bad request', 'the request could not be read');
    }
    logger.error({ err, route: req.route?.path, method: req.method }, 'unhandled error');
    sendProblem(res, 500, 'internal', 'Internal error', 'the request could not be completed');
  };
}
