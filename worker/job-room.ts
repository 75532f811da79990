import { voice, type JobContext } from '@livekit/agents';
import { ParticipantKind, RoomEvent, type Room } from '@livekit/rtc-node';
import type { Logger } from '../common/logger.js';

/** Anyone in the room who is not an agent: the people the session is for. */
function userHere(room: Room): boolean {
  return [...room.remoteParticipants.values()].some((p) => p.kind !== ParticipantKind.AGENT);
}

/** The identity of the first user in the room, if one is there already. */
export function firstUserIn(room: Room): string | undefined {
  return [...room.remoteParticipants.values()].find((p) => p.kind !== ParticipantKind.AGENT)?.identity;
}

export interface SessionEndWatch {
  /** Seconds a first user has to come before the session ends as `no_user`; 0 waits for ever. */
  noUserTimeoutSeconds: number;
  /** LiveKit dispatches automatically only when it creates a room: an automatic session's room goes when its last user leaves. */
  deleteRoomWhenLeft: boolean;
  log: Logger;
  /** The session is over; `reason` is `no_user` when no user came. Called once, whatever ended it. */
  onEnd(reason?: string): Promise<void>;
}

/**
 * The LiveKit side of a job's end: the session is over when the last user
 * leaves, the room closes under the agent, the agent session closes, the job
 * shuts down, or no user came in time. Whichever comes first ends it, once,
 * and at once: the worker slot is free from then on, not only once the job
 * process has finished shutting down (seconds later).
 */
export function watchSessionEnd(ctx: JobContext, session: voice.AgentSession, w: SessionEndWatch): void {
  let ended: Promise<void> | undefined;
  const end = (reason?: string) =>
    (ended ??= (async () => {
      clearTimeout(noUser);
      await w.onEnd(reason);
    })());
  ctx.addShutdownCallback(() => end());
  // A user who never comes (or left before the agent arrived) would keep the agent, and its worker slot, forever.
  let userSeen = userHere(ctx.room);
  ctx.room.on(RoomEvent.ParticipantConnected, (p) => {
    if (p.kind !== ParticipantKind.AGENT) userSeen = true;
  });
  const noUser =
    w.noUserTimeoutSeconds > 0
      ? setTimeout(() => {
          if (userSeen || userHere(ctx.room)) return;
          w.log.info({ seconds: w.noUserTimeoutSeconds }, 'no user joined: ending the session');
          void end('no_user');
          ctx.shutdown('no user joined');
        }, w.noUserTimeoutSeconds * 1000)
      : undefined;

  // The last user gone: the session is over (the agent session closes itself for this, draining its
  // speech for half a second or more); the slot is free for the next session from now.
  ctx.room.on(RoomEvent.ParticipantDisconnected, (p) => {
    if (p.kind !== ParticipantKind.AGENT && !userHere(ctx.room)) {
      // A user who joins agent-{id}-room again at once then opens a new room, and gets an agent.
      if (w.deleteRoomWhenLeft) void ctx.deleteRoom().catch((err: Error) => w.log.warn({ err: err.message }, 'room not deleted'));
      void end();
    }
  });
  // A room closed under the agent (deleted, or the agent removed) ends it too; the session's own close can take seconds.
  ctx.room.on(RoomEvent.Disconnected, () => void end());
  session.on(voice.AgentSessionEventTypes.Close, () => {
    void end();
    ctx.shutdown('agent session closed');
  });
}
