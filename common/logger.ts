import { pino, type Logger } from 'pino';

/**
 * One pino logger per process. Known secret-bearing fields are redacted
 * wherever they appear in a log object.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'headers.authorization',
        'req.headers.authorization',
        'apiKey',
        '*.apiKey',
        'apiSecret',
        '*.apiSecret',
        'token',
        '*.token',
        'participantToken',
        '*.participantToken',
        'LIVEKIT_API_SECRET',
        'API_KEYS',
      ],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
