import { expect } from 'chai';
import { reservedRoomMetadata } from '../../common/rooms.js';
import type { Room } from '@livekit/rtc-node';
import { TokenVerifier, type ClaimGrants } from 'livekit-server-sdk';
import { livekitClients } from '../../common/livekit.js';
import { sessionIdOf } from '../../common/sessions/index.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { stack } from '../support/env.js';
import { joinRoom } from '../support/participant.js';
import { until } from '../support/sessions.js';

type Claims = ClaimGrants & { roomConfig?: { agents?: { agentName?: string; metadata?: string }[] } };

describe('join tokens for every session', function () {
  this.timeout(60_000);
  const TTL = 120;
  let api: TestApi;
  let dispatcher: RunningDispatcher | undefined;
  const rooms: Room[] = [];
  const roomNames: string[] = [];
  const { rooms: roomService, dispatch } = livekitClients(stack);
  const verify = async (token: string) => (await new TokenVerifier(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET).verify(token)) as Claims;
  const token = (id: string, body?: unknown, headers?: Record<string, string>) => api.call('POST', `/api/sessions/${id}/token`, body, headers);
  const join = async (url: string, t: string, roomName: string) => {
    roomNames.push(roomName);
    const room = await joinRoom(url, t);
    rooms.push(room);
    return room;
  };
  const ourDispatches = async (roomName: string) => (await dispatch.listDispatch(roomName)).filter((d) => d.agentName === api.env.AGENT_NAME);

  beforeEach(async () => {
    api = await startTestApi({ PARTICIPANT_TOKEN_TTL: String(TTL) });
    await api.call('POST', '/api/agents/register', agentBody('tk'));
  });
  afterEach(async () => {
    await Promise.all(rooms.splice(0).map((r) => r.disconnect()));
    await Promise.all(roomNames.splice(0).map((n) => roomService.deleteRoom(n).catch(() => undefined)));
    await dispatcher?.stop();
    dispatcher = undefined;
    await api.stop();
  });

  it('gives a batch session a token for its room alone (roomJoin only, PARTICIPANT_TOKEN_TTL), and a participant joins LiveKit with it', async () => {
    const batch = await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 2 });
    expect(batch.status).to.equal(202);
    expect(batch.body).not.to.have.property('sessions');
    const id = batch.body.sessionIds[1] as string;
    const session = (await api.call('GET', `/api/sessions/${id}`)).body;

    const res = await token(id);
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ sessionId: id, roomName: session.roomName, livekitUrl: stack.LIVEKIT_URL, participantToken: res.body.participantToken });
    const claims = await verify(res.body.participantToken);
    expect(claims.sub).to.equal(session.participantIdentity);
    expect(claims.video).to.deep.equal({ room: session.roomName, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
    expect(claims.exp! - claims.nbf!).to.equal(TTL);

    const room = await join(res.body.livekitUrl, res.body.participantToken, session.roomName);
    expect(room.isConnected).to.equal(true);
    expect(room.name).to.equal(session.roomName);
    expect(room.localParticipant?.identity).to.equal(session.participantIdentity);
    const listed = await roomService.listParticipants(session.roomName);
    expect(listed.map((p) => p.identity)).to.deep.equal([session.participantIdentity]);

    // Another participant for the same session: the body names who joins.
    const other = await token(id, { participant: { identity: 'viewer-2', name: 'Viewer', metadata: '{"seat":3}' } });
    expect(other.status).to.equal(200);
    const otherClaims = await verify(other.body.participantToken);
    expect(otherClaims).to.include({ sub: 'viewer-2', name: 'Viewer', metadata: '{"seat":3}' });
    expect(otherClaims.video?.room).to.equal(session.roomName);
  });

  it('answers 409 for a session that is over, 404 for an unknown one, 400 naming the field for a bad body or id, 401 without a key', async () => {
    const s = (await api.call('POST', '/api/sessions', { agentId: 'tk' })).body;
    expect((await api.call('DELETE', `/api/sessions/${s.sessionId}`)).body.status).to.equal('cancelled');
    const over = await token(s.sessionId);
    expect(over.status).to.equal(409);
    expect(over.headers.get('content-type')).to.match(/problem\+json/);
    expect(over.body.detail).to.include('cancelled');

    const unknown = await token('ses_000000000000000000000');
    expect(unknown.status).to.equal(404);
    expect(unknown.headers.get('content-type')).to.match(/problem\+json/);

    const live = (await api.call('POST', '/api/sessions', { agentId: 'tk' })).body;
    const cases: [unknown, string][] = [
      [{ participant: { identity: 'has space' } }, 'participant.identity'],
      [{ participant: { name: '' } }, 'participant.name'],
      [{ participant: 'me' }, 'participant'],
      [{ participant: { role: 'admin' } }, 'participant.role'],
      [{ room: 'elsewhere' }, 'room'],
    ];
    for (const [body, field] of cases) {
      const res = await token(live.sessionId, body);
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(res.body.errors.map((e: { field: string }) => e.field), JSON.stringify(body)).to.include(field);
    }
    const badId = await token('not-an-id');
    expect(badId.status).to.equal(400);
    expect(badId.body.errors[0].field).to.equal('id');
    const noKey = await fetch(`${api.url}/api/sessions/${live.sessionId}/token`, { method: 'POST' });
    expect(noKey.status).to.equal(401);
  });

  it('with an Idempotency-Key, a repeat gets the first token back; the same key for another session is another request', async () => {
    const [a, b] = (await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 2 })).body.sessionIds as string[];
    const headers = { 'idempotency-key': 'join-1' };
    const first = await token(a!, undefined, headers);
    // A token minted a second later differs (its nbf and exp): a replay is the stored one.
    await new Promise((r) => setTimeout(r, 1100));
    const again = await token(a!, undefined, headers);
    expect(again.status).to.equal(200);
    expect(again.body).to.deep.equal(first.body);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    const other = await token(b!, undefined, headers);
    expect(other.status).to.equal(200);
    expect(other.headers.get('idempotent-replayed')).to.equal(null);
    expect(other.body.sessionId).to.equal(b);
  });

  it('with tokens: true, a batch (either form) answers with each session its token, in order', async () => {
    const counted = await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 3, tokens: true, participant: { name: 'Caller' } });
    expect(counted.status).to.equal(202);
    expect(counted.body.livekitUrl).to.equal(stack.LIVEKIT_URL);
    expect(counted.body.sessions.map((s: { sessionId: string }) => s.sessionId)).to.deep.equal(counted.body.sessionIds);
    for (const s of counted.body.sessions as { sessionId: string; roomName: string; participantToken: string }[]) {
      const view = (await api.call('GET', `/api/sessions/${s.sessionId}`)).body;
      expect(s.roomName).to.equal(view.roomName);
      const claims = await verify(s.participantToken);
      expect(claims).to.include({ sub: view.participantIdentity, name: 'Caller' });
      expect(claims.video).to.deep.include({ room: view.roomName, roomJoin: true });
      expect(claims.exp! - claims.nbf!).to.equal(TTL);
    }

    const listed = await api.call('POST', '/api/sessions/batch', {
      tokens: true,
      sessions: [{ agentId: 'tk', participant: { identity: 'alice' } }, { agentId: 'tk', roomName: 'tokens-shared-desk' }],
    });
    expect(listed.status).to.equal(202);
    const [alice, desk] = listed.body.sessions as { sessionId: string; roomName: string; participantToken: string }[];
    expect((await verify(alice!.participantToken)).sub).to.equal('alice');
    expect(desk!.roomName).to.equal('tokens-shared-desk');
    expect((await verify(desk!.participantToken)).video?.room).to.equal('tokens-shared-desk');

    const bad = await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 2, tokens: 'yes' });
    expect(bad.status).to.equal(400);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['tokens']);
  });

  it('a scheduled session: neither its 202 token nor a new one carries the dispatch; joining early creates no agent dispatch and the session stays queued', async () => {
    await api.call('POST', '/api/agents/register', agentBody('capped', { maxConcurrentSessions: 1 }));
    // No dispatcher runs (DISPATCH_MODE=immediate, as in the tests): a dispatch in a room can only come from a token.
    const scheduled = (await api.call('POST', '/api/sessions', { agentId: 'tk', scheduledAt: new Date(Date.now() + 10 * 60_000).toISOString() })).body;
    const now = (await api.call('POST', '/api/sessions', { agentId: 'tk' })).body;
    const capped = (await api.call('POST', '/api/sessions', { agentId: 'capped' })).body;
    const [scheduledBatch] = (await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 1, tokens: true, scheduledAt: new Date(Date.now() + 10 * 60_000).toISOString() })).body
      .sessions as { sessionId: string; roomName: string; participantToken: string }[];
    const scheduledToken = (await token(scheduled.sessionId)).body.participantToken as string;
    const nowToken = (await token(now.sessionId)).body.participantToken as string;

    // The control: an unscheduled, uncapped session's tokens carry its dispatch (dispatch on join) ...
    for (const t of [now.participantToken, nowToken]) {
      const agents = (await verify(t)).roomConfig?.agents ?? [];
      expect(agents.map((a) => a.agentName)).to.deep.equal([api.env.AGENT_NAME]);
      expect(sessionIdOf(agents[0]!.metadata!)).to.equal(now.sessionId);
    }
    // ... and the rule: not for a schedule or a cap, from any of the three places tokens come from.
    const withoutDispatch: [string, string][] = [
      [scheduled.participantToken, scheduled.sessionId],
      [scheduledToken, scheduled.sessionId],
      [scheduledBatch!.participantToken, scheduledBatch!.sessionId],
      [capped.participantToken, capped.sessionId],
      [(await token(capped.sessionId)).body.participantToken, capped.sessionId],
    ];
    for (const [t, sessionId] of withoutDispatch) {
      const roomConfig = (await verify(t)).roomConfig;
      expect(roomConfig?.agents ?? [], 'token of a scheduled or capped session').to.deep.equal([]);
      // The room its join opens is still marked as the session's (no automatically dispatched agent takes it).
      expect(roomConfig?.metadata).to.equal(reservedRoomMetadata(sessionId));
    }

    // Joining for real: the unscheduled session's join creates its room with its agent dispatch ...
    await join(stack.LIVEKIT_URL, nowToken, now.roomName);
    const made = await until(async () => {
      const d = await ourDispatches(now.roomName);
      return d.length ? d : undefined;
    }, 10_000);
    expect(made.map((d) => sessionIdOf(d.metadata))).to.deep.equal([now.sessionId]);
    // ... the scheduled ones' joins create the rooms but no dispatch: nothing starts before its time.
    await join(stack.LIVEKIT_URL, scheduledToken, scheduled.roomName);
    await join(stack.LIVEKIT_URL, scheduledBatch!.participantToken, scheduledBatch!.roomName);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await roomService.listRooms([scheduled.roomName, scheduledBatch!.roomName])).length).to.equal(2);
    expect(await ourDispatches(scheduled.roomName)).to.deep.equal([]);
    expect(await ourDispatches(scheduledBatch!.roomName)).to.deep.equal([]);
    for (const id of [scheduled.sessionId, scheduledBatch!.sessionId]) {
      expect((await api.call('GET', `/api/sessions/${id}`)).body.status).to.equal('queued');
    }
  });

  it('a session already dispatched gets a token without a dispatch: its room is the dispatcher’s', async () => {
    dispatcher = await startTestDispatcher(api.env);
    const s = (await api.call('POST', '/api/sessions', { agentId: 'tk' })).body;
    roomNames.push(s.roomName);
    await until(async () => (await api.call('GET', `/api/sessions/${s.sessionId}`)).body.status === 'dispatched');
    const res = await token(s.sessionId);
    expect(res.status).to.equal(200);
    const claims = await verify(res.body.participantToken);
    expect(claims.video).to.deep.include({ room: s.roomName, roomJoin: true });
    expect(claims.roomConfig?.agents ?? []).to.deep.equal([]);
    expect(claims.roomConfig?.metadata).to.equal(reservedRoomMetadata(s.sessionId));
  });

  it('GET /health is /healthz: the same answer, without a key', async () => {
    const [health, healthz] = await Promise.all([fetch(`${api.url}/health`), fetch(`${api.url}/healthz`)]);
    expect(health.status).to.equal(200);
    expect(health.status).to.equal(healthz.status);
    expect(health.headers.get('content-type')).to.equal(healthz.headers.get('content-type'));
    expect(await health.json()).to.deep.equal(await healthz.json());
  });

  it('the API description shows the token route, its body and the batch tokens field', async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as any;
    const route = doc.paths['/api/sessions/{id}/token'];
    expect(route.post.requestBody.content['application/json'].schema.$ref).to.equal('#/components/schemas/TokenRequest');
    expect(route.post.requestBody.required).to.equal(false);
    expect(route.post.security).to.deep.equal([{ bearer: [] }]);
    expect(Object.keys(route.post.responses)).to.include.members(['200', '404', '409']);
    const body = doc.components.schemas.TokenRequest;
    expect(body.properties).to.have.keys('participant');
    expect(body.properties.participant.properties).to.have.keys('identity', 'name', 'metadata');
    expect(body.additionalProperties).to.equal(false);
    for (const form of doc.components.schemas.BatchRequest.anyOf) expect(form.properties.tokens.type).to.equal('boolean');
    // Unknown fields are refused with the same key as the rest.
    expect((await api.call('POST', '/api/sessions/batch', { agentId: 'tk', count: 1, token: true })).status).to.equal(400);
  });
});
