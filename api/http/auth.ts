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

/**
 * The operators' key for /admin: `Authorization: Bearer <key>`, or HTTP Basic
 * with the key as password (any user name), which is what a browser can send
 * to a dashboard page and the calls it makes. No credentials: 401 with a Basic
 * challenge, so the browser asks; a wrong key: 403.
 */
export function requireAdminKey(keys: string[]): RequestHandler {
  const known = keys.map(digest);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const bearer = /^Bearer ([^\s]+)$/i.exec(header)?.[1];
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header)?.[1];
    const given = bearer ?? (basic ? Buffer.from(basic, 'base64').toString('utf8').replace(/^[^:]*:/, '') : undefined);
    if (!given) {
      res.setHeader('WWW-Authenticate', 'Basic realm="agent-runtime admin", charset="UTF-8"');
      return sendProblem(res, 401, 'unauthorized', 'Unauthorized', 'send the admin key (ADMIN_API_KEYS) as Bearer, or as the password of HTTP Basic');
    }
    const d = digest(given);
    let ok = false;
    for (const k of known) ok = timingSafeEqual(k, d) || ok;
    if (!ok) return sendProblem(res, 403, 'forbidden', 'Forbidden', 'the admin key is not valid');
    next();
  };
}
