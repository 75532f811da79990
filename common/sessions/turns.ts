import type { Redis } from 'ioredis';

/**
 * A session's conversation as it happens, kept in Redis so that an agent
 * replacing one that died continues it instead of greeting again. Bounded
 * (the latest MAX_TURNS) and expiring with the session's placement record.
 */
export const MAX_TURNS = 50;
const TTL_SECONDS = 24 * 3600;
const MAX_TEXT = 4000;

export interface Turn {
  role: 'user' | 'assistant';
  text: string;
}

export class ConversationMemory {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(sessionId: string) {
    return `${this.prefix}:session:${sessionId}:turns`;
  }

  async append(sessionId: string, turn: Turn): Promise<void> {
    const key = this.key(sessionId);
    await this.redis
      .multi()
      .rpush(key, JSON.stringify({ role: turn.role, text: turn.text.slice(0, MAX_TEXT) }))
      .ltrim(key, -MAX_TURNS, -1)
      .expire(key, TTL_SECONDS)
      .exec();
  }

  async load(sessionId: string): Promise<Turn[]> {
    const items = await this.redis.lrange(this.key(sessionId), 0, -1);
    return items.flatMap((s) => {
      try {
        const t = JSON.parse(s) as Turn;
        return (t.role === 'user' || t.role === 'assistant') && typeof t.text === 'string' ? [t] : [];
      } catch {
        return [];
      }
    });
  }
}
