import type { Room } from '@livekit/rtc-node';
import type { TurnPart } from './metrics.js';

/** The data topic an answered turn's latency is published on, for clients in the room (the playground page). */
export const TURN_TOPIC = 'agent-runtime.turn';

/** What a client receives on TURN_TOPIC: one answered turn, in seconds, as the agent session measured it. */
export interface TurnReport {
  /** The user stopped speaking (VAD) → the agent's first audio out. */
  seconds: number;
  parts: Partial<Record<TurnPart, number>>;
}

/**
 * Publishes each answered turn's latency to the room (reliable, small JSON),
 * beside the worker metric: a client can set its own measurement next to
 * the worker's. A failed publish is dropped: it is a report, not the turn.
 */
export function publishTurn(room: Room, report: TurnReport): void {
  const p = room.localParticipant;
  if (!room.isConnected || !p) return;
  const data = new TextEncoder().encode(JSON.stringify(report));
  void p.publishData(data, { reliable: true, topic: TURN_TOPIC }).catch(() => undefined);
}
