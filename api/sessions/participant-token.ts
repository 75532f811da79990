import { AccessToken } from 'livekit-server-sdk';

export interface TokenSettings {
  apiKey: string;
  apiSecret: string;
  ttlSeconds: number;
}

/** A token for the end user: join this one room only, for a short time. */
export async function participantToken(
  s: TokenSettings,
  p: { room: string; identity: string; name?: string; metadata?: string },
): Promise<string> {
  const at = new AccessToken(s.apiKey, s.apiSecret, {
    identity: p.identity,
    ttl: s.ttlSeconds,
    ...(p.name ? { name: p.name } : {}),
    ...(p.metadata ? { metadata: p.metadata } : {}),
  });
  at.addGrant({ room: p.room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}
