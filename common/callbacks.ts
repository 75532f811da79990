import { createHmac, timingSafeEqual } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from './logger.js';
import { createRedis } from './redis.js';

/**
 * Status callbacks: every status change of a session with a `callbackUrl` is
 * POSTed there as JSON, through a BullMQ queue so a slow or dead endpoint
 * never holds up a session, retried with exponential backoff.
 *
 * Signature header, as Stripe and others do it:
 *   X-Agent-Runtime-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 */
export const CALLBACKS_QUEUE = 'callbacks';
export const SIGNATURE_HEADER = 'x-agent-runtime-signature';

export interface CallbackJob {
  url: string;
  body: string;
}

export function sign(secret: string, body: string, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** For receivers: checks the signature and that it is at most `toleranceSeconds` old. */
export function verifySignature(secret: string, body: string, header: string, toleranceSeconds = 300): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = Buffer.from(sign(secret, body, t).slice(-64), 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex'));
}

export function callbacksQueue(connection: Redis, prefix: string): Queue<CallbackJob> {
  return new Queue<CallbackJob>(CALLBACKS_QUEUE, { connection, prefix });
}

export async function enqueueCallback(queue: Queue<CallbackJob>, url: string, payload: unknown): Promise<void> {
  await queue.add('callback', { url, body: JSON.stringify(payload) }, {
    attempts: 10,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  });
}

/** Delivers callbacks; any non-2xx answer or network error is retried by BullMQ. */
export function startCallbackWorker(o: { redisUrl: string; prefix: string; secret: string; logger: Logger; concurrency?: number; timeoutMs?: number }) {
  const worker = new Worker<CallbackJob>(
    CALLBACKS_QUEUE,
    async (job: Job<CallbackJob>) => {
      const res = await fetch(job.data.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(o.secret, job.data.body), 'user-agent': 'agent-runtime-callbacks' },
        body: job.data.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
      });
      await res.body?.cancel();
      if (res.status < 200 || res.status >= 300) throw new Error(`callback answered ${res.status}`);
    },
    { connection: createRedis(o.redisUrl, 'blocking'), prefix: o.prefix, concurrency: o.concurrency ?? 16 },
  );
  worker.on('error', (err) => o.logger.debug({ err: err.message }, 'callback worker error'));
  worker.on('failed', (job, err) => o.logger.debug({ attempt: job?.attemptsMade, err: err.message }, 'callback not delivered yet'));
  return worker;
}
