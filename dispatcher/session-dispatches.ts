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
  return ofSession(await dispatch.listDispatch(s.roomName), agentName, s);
}

type Dispatches = Awaited<ReturnType<AgentDispatchClient['listDispatch']>>;

function ofSession(all: Dispatches, agentName: string, s: SessionDispatchRef): Dispatches {
  return all.filter((x) => x.agentName === agentName && sessionIdOf(x.metadata) === s.sessionId);
}

/**
 * A room that existed before the session's dispatcher got to it: whether it
 * already has this session's dispatch, and whether an automatically
 * dispatched agent (LiveKit's nameless dispatch, AGENT_DISPATCH=automatic)
 * has a job in it that is not over — then a dispatch of ours would be a second agent.
 */
export async function existingRoomDispatches(dispatch: AgentDispatchClient, agentName: string, s: SessionDispatchRef) {
  const all = await dispatch.listDispatch(s.roomName);
  // Job status 0 and 1 are JS_PENDING and JS_RUNNING; a job taken by a worker names its agent participant.
  const automaticAgent = all.some((x) => x.agentName === '' && (x.state?.jobs ?? []).some((j) => j.state?.participantIdentity && (j.state.status ?? 0) < 2));
  return { ours: ofSession(all, agentName, s), automaticAgent };
}

/** Deletes every dispatch of this session, so no agent joins for it. */
export async function withdrawSessionDispatches(dispatch: AgentDispatchClient, agentName: string, s: SessionDispatchRef): Promise<void> {
  for (const x of await sessionDispatches(dispatch, agentName, s)) await dispatch.deleteDispatch(x.id, s.roomName);
}
