import { AccessToken } from 'livekit-server-sdk';
import { Room } from '@livekit/rtc-node';
import { random36 } from '../../common/random.js';
import { SESSION_ATTRIBUTE } from '../../common/sessions/index.js';
import { stack } from './env.js';

/** A real participant in a LiveKit room (the @livekit/rtc-node client). */
export async function joinRoom(url: string, token: string): Promise<Room> {
  const room = new Room();
  await room.connect(url, token, { autoSubscribe: true, dynacast: false });
  return room;
}

/** A participant of kind "agent", as a worker's would be, naming the session it serves. */
export async function joinAsAgent(url: string, roomName: string, sessionId?: string): Promise<Room> {
  const at = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, {
    identity: `agent-test-${random36(6)}`,
    ttl: 600,
    ...(sessionId ? { attributes: { [SESSION_ATTRIBUTE]: sessionId } } : {}),
  });
  at.kind = 'agent';
  at.addGrant({ room: roomName, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  return joinRoom(url, await at.toJwt());
}
