import type { Redis } from 'ioredis';

/**
 * Per-agent concurrency caps. The sessions holding a slot (dispatched or
 * active) are members of a Redis set per agent; taking a slot checks the size
 * and adds in one script, so replicas never over-admit. Taking a slot twice
 * for one session is a no-op, so a retried dispatch keeps its slot.
 */
const TAKE = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

export class AgentSlots {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(agentId: string) {
    return `${this.prefix}:agent-slots:${agentId}`;
  }

  async take(agentId: string, sessionId: string, cap: number): Promise<boolean> {
    return (await this.redis.eval(TAKE, 1, this.key(agentId), sessionId, String(cap))) === 1;
  }

  async release(agentId: string, sessionId: string): Promise<void> {
    await this.redis.srem(this.key(agentId), sessionId);
  }

}
