import type { AgentDispatchClient } from 'livekit-server-sdk';
import { sessionIdOf } from '../common/sessions/index.js';

export interface SessionDispatchRef {
  roomName: string;
  sessionId: string;
}

/**
 * This session's dispatches of our agent in its room, found by the session id
 * in their metadata: a dispatch made with the room has no id on the record
 * until the agent reports it.
 */
export async function sessionDispatches(dispatch: AgentDispatchClient, agentName: string, s: SessionDispatchRef) {
  return (await dispatch.listDispatch(s.roomName)).filter((x) => x.agentName === agentName && sessionIdOf(x.metadata) === s.sessionId);
}

/** Deletes every dispatch of this session, so no agent joins for it. */
export async function withdrawSessionDispatches(dispatch: AgentDispatchClient, agentName: string, s: SessionDispatchRef): Promise<void> {
  for (const x of await sessionDispatches(dispatch, agentName, s)) await dispatch.deleteDispatch(x.id, s.roomName);
}
