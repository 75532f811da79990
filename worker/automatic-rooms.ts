import { AgentNotFoundError, toAppError } from '../common/errors.js';
import type { AgentResolver } from '../common/agents/index.js';
import { isSessionRoom, parseRoomName } from '../common/rooms.js';

export type RoomVerdict = { take: true; agentId: string } | { take: false; reason: 'not_agent_room' | 'session_room' | 'agent_not_found' | 'config_unavailable' };

/**
 * Which new rooms an automatically dispatched worker (AGENT_DISPATCH=automatic)
 * takes: a room named `agent-{id}-room` (or `agent-{id}-room-{suffix}`) of an
 * agent that exists, and not one a session of this API made or reserved (its
 * room metadata says so; that session gets its agent by explicit dispatch).
 * Everything else is declined at the job request, so the worker never joins a
 * room it has no agent for.
 */
export class AutomaticRooms {
  constructor(private readonly resolver: Pick<AgentResolver, 'resolve'>) {}

  async verdict(room: { name: string; metadata?: string } | undefined): Promise<RoomVerdict> {
    const parsed = room ? parseRoomName(room.name) : undefined;
    if (!room || !parsed) return { take: false, reason: 'not_agent_room' };
    if (isSessionRoom(room.metadata)) return { take: false, reason: 'session_room' };
    try {
      await this.resolver.resolve(parsed.agentId);
      return { take: true, agentId: parsed.agentId };
    } catch (err) {
      const app = toAppError(err);
      if (app instanceof AgentNotFoundError) return { take: false, reason: 'agent_not_found' };
      // Redis and MongoDB both away: no way to know the agent; LiveKit offers the room again to no one,
      // so the user's next join (a new room) is the retry.
      if (app) return { take: false, reason: 'config_unavailable' };
      throw err;
    }
  }
}
