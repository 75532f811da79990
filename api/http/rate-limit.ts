import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { sendProblem } from './problem.js';

/**
 * Per API key request limits, shared by every API replica through Redis. If
 * Redis cannot answer, an in-process limiter with the same budget takes over,
 * per replica (N replicas: up to N times the limit while Redis is away; the
 * request path then fails on its own 503 anyway where it needs Redis).
 * docs/OPERATIONS.md, "Clients get 429".
 */
export function rateLimit(o: { redis: Redis; prefix: string; points: number; durationSeconds: number }): RequestHandler {
  const limiter = new RateLimiterRedis({
    storeClient: o.redis,
    keyPrefix: `${o.prefix}:ratelimit`,
    points: o.points,
    duration: o.durationSeconds,
    insuranceLimiter: new RateLimiterMemory({ points: o.points, duration: o.durationSeconds }),
  });
  return async (_req, res, next) => {
    const key = String(res.locals.apiKeyId ?? 'anonymous');
    try {
      const r = await limiter.consume(key);
      res.setHeader('RateLimit-Limit', String(o.points));
      res.setHeader('RateLimit-Remaining', String(r.remainingPoints));
      next();
    } catch (rej) {
      if (!(rej instanceof RateLimiterRes)) return next(rej);
      const retryAfter = Math.max(1, Math.ceil(rej.msBeforeNext / 1000));
      res.setHeader('Retry-After', String(retryAfter));
      res.setHeader('RateLimit-Limit', String(o.points));
      res.setHeader('RateLimit-Remaining', '0');
      sendProblem(res, 429, 'rate-limited', 'Too many requests', `over ${o.points} requests per ${o.durationSeconds} s for this API key; retry after ${retryAfter} s`);
    }
  };
}
