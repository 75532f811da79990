import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { sendProblem } from './problem.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer keys, compared in constant time: both sides are hashed to equal
 * length first, and every key is compared so the time does not tell which matched.
 */
export function requireApiKey(keys: string[]): RequestHandler {
  const known = keys.map(digest);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer ([^\s]+)$/.exec(header);
    let ok = false;
    let given: Buffer | undefined;
    if (m) {
      given = digest(m[1]!);
      for (const k of known) ok = timingSafeEqual(k, given) || ok;
    }
    if (!ok) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return sendProblem(res, 401, 'unauthorized', 'Unauthorized', m ? 'the API key is not valid' : 'send Authorization: Bearer <API key>');
    }
    // A stable, non-secret name for the key: scopes rate limits and idempotency keys.
    res.locals.apiKeyId = given!.toString('hex').slice(0, 12);
    next();
  };
}
