/** Participant attributes our worker sets on its agent participant, read back by the webhook handler. */
export const SESSION_ATTRIBUTE = 'agent-runtime.session-id';
export const AGENT_ATTRIBUTE = 'agent-runtime.agent-id';
export const WORKER_ATTRIBUTE = 'agent-runtime.worker-id';
export const GENERATION_ATTRIBUTE = 'agent-runtime.generation';
/** 'automatic' on an agent LiveKit dispatched automatically to a room named agent-{id}-room. */
export const SOURCE_ATTRIBUTE = 'agent-runtime.source';
