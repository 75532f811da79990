import express, { type RequestHandler } from 'express';
import { sendProblem } from './problem.js';

const JSON_TYPES = ['application/json', 'application/merge-patch+json', 'application/*+json'];

/**
 * JSON bodies only: a request that carries a body of another type is a 415,
 * and a body over `limit` a 413 (from body-parser, turned into problem+json).
 */
export function jsonBody(limit: string): RequestHandler[] {
  const requireJson: RequestHandler = (req, res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.is(JSON_TYPES)) {
      return sendProblem(res, 415, 'unsupported-media-type', 'Unsupported media type', 'send the body as application/json');
    }
    next();
  };
  return [requireJson, express.json({ limit, strict: true, type: JSON_TYPES })];
}
