import express, { Router } from 'express';
import { WebhookReceiver } from 'livekit-server-sdk';
import type { Logger } from '../../common/logger.js';
import type { Redis } from '../../common/redis.js';
import { sendProblem } from '../http/problem.js';
import { applyWebhookEvent, type WebhookDeps } from './webhook-events.js';
import { WEBHOOK_MAX_AGE_SECONDS, WebhookReplays } from './webhook-replays.js';

/**
 * POST /api/livekit/webhook. Authenticated by LiveKit's own signature (a JWT
 * in Authorization whose sha256 claim covers the raw body), not by API key;
 * each event is applied once: an event id seen before, or an event outside
 * the time window, changes nothing (api/livekit/webhook-replays.ts).
 */
export function webhookRoutes(d: WebhookDeps & { apiKey: string; apiSecret: string; logger: Logger; redis: Redis; prefix: string }): Router {
  const receiver = new WebhookReceiver(d.apiKey, d.apiSecret);
  const replays = new WebhookReplays(d.redis, d.prefix);
  const r = Router();
  r.post('/', express.text({ type: () => true, limit: '256kb' }), async (req, res) => {
    const body = typeof req.body === 'string' ? req.body : '';
    let event;
    try {
      event = await receiver.receive(body, req.get('authorization'));
    } catch {
      return sendProblem(res, 401, 'bad-webhook-signature', 'Unauthorized', 'the webhook is not signed by the configured LiveKit key');
    }
    const freshness = await replays.claim(event);
    if (freshness === 'undated') return sendProblem(res, 400, 'undated-webhook', 'Invalid request', 'the webhook has no event id or createdAt to check it against replays');
    if (freshness === 'stale') {
      d.logger.warn({ event: event.event, id: event.id, createdAt: Number(event.createdAt) }, 'livekit webhook outside its time window refused');
      return sendProblem(res, 401, 'stale-webhook', 'Unauthorized', `the webhook was made more than ${WEBHOOK_MAX_AGE_SECONDS} s ago (or in the future)`);
    }
    if (freshness === 'duplicate') {
      // Answered 200: LiveKit stops retrying, and a replay learns nothing.
      d.logger.debug({ event: event.event, id: event.id }, 'livekit webhook seen before: ignored');
      return res.json({ received: true, applied: false, duplicate: true });
    }
    let outcome;
    try {
      outcome = await applyWebhookEvent(event, d);
    } catch (err) {
      // Not applied: LiveKit's retry of this event must not be taken for a replay.
      await replays.release(event.id).catch((e: Error) => d.logger.warn({ err: e.message, id: event.id }, 'webhook replay mark not released; a retry of this event is ignored until it expires'));
      throw err;
    }
    d.logger.debug({ event: event.event, id: event.id, room: event.room?.name, ...outcome }, 'livekit webhook');
    res.json({ received: true, ...outcome });
  });
  return r;
}
