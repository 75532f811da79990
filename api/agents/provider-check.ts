import type { WorkerCapacity } from '../../common/workers/capacity.js';
import { registrationWarnings } from '../../common/workers/providers.js';

/**
 * Warnings for a registration, from what the live workers publish with their
 * heartbeats. Registering is never refused for them: a worker with the keys
 * may start later. Without worker capacity (DISPATCH_MODE=immediate, agents
 * that may run elsewhere and beat nowhere here) there is nothing to check.
 */
export class ProviderCheck {
  constructor(private readonly capacity: WorkerCapacity | undefined) {}

  async warnings(config: { stt: { provider: string }; tts: { provider: string } }): Promise<string[]> {
    if (!this.capacity) return [];
    // The agent is registered by now: a failed look-up costs only the warning, not the answer.
    const workers = await this.capacity.live().catch(() => null);
    if (workers === null) return [];
    return registrationWarnings(config, workers.length ? workers : undefined);
  }
}
