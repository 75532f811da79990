import express, { Router } from 'express';
import { WebhookReceiver } from 'livekit-server-sdk';
import type { Logger } from '../../common/logger.js';
import { sendProblem } from '../http/problem.js';
import { applyWebhookEvent, type WebhookDeps } from './webhook-events.js';

/**
 * POST /api/livekit/webhook. Authenticated by LiveKit's own signature (a JWT
 * in Authorization whose sha256 claim covers the raw body), not by API key.
 */
export function webhookRoutes(d: WebhookDeps & { apiKey: string; apiSecret: string; logger: Logger }): Router {
  const receiver = new WebhookReceiver(d.apiKey, d.apiSecret);
  const r = Router();
  r.post('/', express.text({ type: () => true, limit: '256kb' }), async (req, res) => {
    const body = typeof req.body === 'string' ? req.body : '';
    let event;
    try {
      event = await receiver.receive(body, req.get('authorization'));
    } catch {
      return sendProblem(res, 401, 'bad-webhook-signature', 'Unauthorized', 'the webhook is not signed by the configured LiveKit key');
    }
    const outcome = await applyWebhookEvent(event, d);
    d.logger.debug({ event: event.event, room: event.room?.name, ...outcome }, 'livekit webhook');
    res.json({ received: true, ...outcome });
  });
  return r;
}
