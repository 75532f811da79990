import { expect } from 'chai';
import { agentBody, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';

describe('agent registry HTTP API', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi();
  });
  after(async () => {
    await api.stop();
  });

  describe('register, read, change, delete', () => {
    it('when an agent is registered, then 201 returns it at version 1, and a numeric id is kept as a string', async () => {
      const res = await api.call('POST', '/api/agents/register', agentBody(1));
      expect(res.status).to.equal(201);
      expect(res.body).to.include({ id: '1', name: 'Agent 1', version: 1, transcription: true, allowInterruptions: true });
      expect(res.body.createdAt).to.be.a('string');
      const got = await api.call('GET', '/api/agents/1');
      expect(got.status).to.equal(200);
      expect(got.body).to.deep.equal(res.body);
    });

    it('when the same id is registered with a change, then 200 and version 2; an unchanged body makes no version', async () => {
      await api.call('POST', '/api/agents/register', agentBody('re'));
      const changed = await api.call('POST', '/api/agents/register', agentBody('re', { name: 'Renamed' }));
      expect(changed.status).to.equal(200);
      expect(changed.body).to.include({ name: 'Renamed', version: 2 });
      const same = await api.call('POST', '/api/agents/register', agentBody('re', { name: 'Renamed' }));
      expect(same.status).to.equal(200);
      expect(same.body.version).to.equal(2);
    });

    it('when patched, then nested fields merge, null removes, and the result is validated as a whole', async () => {
      await api.call('POST', '/api/agents/register', agentBody('p'));
      const ok = await api.call('PATCH', '/api/agents/p', { llm: { temperature: 0.1 }, greeting: null });
      expect(ok.status).to.equal(200);
      expect(ok.body.llm).to.deep.equal({ provider: 'openai', model: 'gpt-4o-mini', temperature: 0.1 });
      expect(ok.body).not.to.have.property('greeting');
      expect(ok.body.version).to.equal(2);

      const bad = await api.call('PATCH', '/api/agents/p', { llm: { model: null } });
      expect(bad.status).to.equal(400);
      expect(bad.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['llm.model']);
      expect((await api.call('GET', '/api/agents/p')).body.version).to.equal(2);

      const idChange = await api.call('PATCH', '/api/agents/p', { id: 'other' });
      expect(idChange.status).to.equal(400);
    });

    it('when deleted, then reads are 404, the versions remain, and registering again creates it anew', async () => {
      await api.call('POST', '/api/agents/register', agentBody('gone'));
      expect((await api.call('DELETE', '/api/agents/gone')).status).to.equal(204);
      expect((await api.call('GET', '/api/agents/gone')).status).to.equal(404);
      expect((await api.call('DELETE', '/api/agents/gone')).status).to.equal(404);
      const versions = await api.call('GET', '/api/agents/gone/versions');
      expect(versions.body.items.map((v: { version: number; deleted: boolean }) => [v.version, v.deleted])).to.deep.equal([
        [2, true],
        [1, false],
      ]);
      const again = await api.call('POST', '/api/agents/register', agentBody('gone'));
      expect(again.status).to.equal(201);
      expect(again.body.version).to.equal(3);
    });

    it('lists agents in pages with a cursor, without deleted ones', async () => {
      const local = await startTestApi();
      try {
        for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) await local.call('POST', '/api/agents/register', agentBody(id));
        await local.call('DELETE', '/api/agents/a3');
        const p1 = await local.call('GET', '/api/agents?limit=2');
        expect(p1.body.items.map((a: { id: string }) => a.id)).to.deep.equal(['a1', 'a2']);
        const p2 = await local.call('GET', `/api/agents?limit=2&cursor=${p1.body.nextCursor}`);
        expect(p2.body.items.map((a: { id: string }) => a.id)).to.deep.equal(['a4', 'a5']);
        expect(p2.body.nextCursor).to.equal(null);
        expect((await local.call('GET', '/api/agents?limit=0')).status).to.equal(400);
        expect((await local.call('GET', '/api/agents?limit=2&limit=3')).status).to.equal(400);
      } finally {
        await local.stop();
      }
    });
  });

  describe('versions and rollback', () => {
    it('keeps every version and rolls back by writing the old config as a new version', async () => {
      await api.call('POST', '/api/agents/register', agentBody('v', { instructions: 'first' }));
      await api.call('POST', '/api/agents/register', agentBody('v', { instructions: 'second' }));
      await api.call('POST', '/api/agents/register', agentBody('v', { instructions: 'third' }));
      const v1 = await api.call('GET', '/api/agents/v/versions/1');
      expect(v1.status).to.equal(200);
      expect(v1.body.config.instructions).to.equal('first');
      const rolled = await api.call('POST', '/api/agents/v/rollback', { version: 1 });
      expect(rolled.status).to.equal(200);
      expect(rolled.body).to.include({ instructions: 'first', version: 4 });
      const page = await api.call('GET', '/api/agents/v/versions?limit=3');
      expect(page.body.items.map((x: { version: number }) => x.version)).to.deep.equal([4, 3, 2]);
      const rest = await api.call('GET', `/api/agents/v/versions?limit=3&cursor=${page.body.nextCursor}`);
      expect(rest.body.items.map((x: { version: number }) => x.version)).to.deep.equal([1]);
      const missing = await api.call('GET', '/api/agents/v/versions/9');
      expect(missing.status).to.equal(404);
      expect(missing.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['version']);
      expect((await api.call('POST', '/api/agents/v/rollback', { version: 9 })).status).to.equal(404);
      expect((await api.call('POST', '/api/agents/v/rollback', { version: 'one' })).status).to.equal(400);
    });

    it('when many writers change one agent at once, then every write gets its own version', async () => {
      await api.call('POST', '/api/agents/register', agentBody('race'));
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => api.call('PATCH', '/api/agents/race', { instructions: `writer ${i}` })),
      );
      const ok = results.filter((r) => r.status === 200);
      const versions = ok.map((r) => r.body.version as number).sort((a, b) => a - b);
      expect(new Set(versions).size).to.equal(ok.length);
      const stored = await api.call('GET', '/api/agents/race/versions?limit=50');
      expect(stored.body.items).to.have.length(1 + ok.length);
      expect(results.every((r) => r.status === 200 || r.status === 409)).to.equal(true);
    });
  });

  describe('bad input', () => {
    it('names every invalid field in a problem+json 400 and stores nothing', async () => {
      const res = await api.call('POST', '/api/agents/register', {
        id: 'bad id!',
        name: '',
        instructions: 'x',
        stt: { provider: 'whisper' },
        llm: { provider: 'openai' },
        tts: { provider: 'openai', speed: 9 },
        endpointing: { minDelayMs: 2000, maxDelayMs: 1000 },
        surprise: true,
      });
      expect(res.status).to.equal(400);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect(res.body).to.include({ status: 400, title: 'Invalid request' });
      expect(res.body.type).to.be.a('string');
      const fields = res.body.errors.map((e: { field: string }) => e.field).sort();
      expect(fields).to.deep.equal(['endpointing.minDelayMs', 'id', 'llm.model', 'name', 'stt.provider', 'surprise', 'tts.speed']);
      expect((await api.call('GET', '/api/agents/bad%20id!')).status).to.equal(400);
    });

    it('refuses operator-shaped ids and prototype keys with 400 and stores nothing', async () => {
      const op = await api.call('POST', '/api/agents/register', agentBody('x', { id: { $ne: null } }));
      expect(op.status).to.equal(400);
      expect(op.body.errors[0].field).to.equal('id');

      const proto = await api.call('POST', '/api/agents/register', `{"id":"proto","name":"n","instructions":"i","stt":{"provider":"deepgram"},"llm":{"provider":"openai","model":"m"},"tts":{"provider":"openai"},"__proto__":{"admin":true}}`, { 'content-type': 'application/json' });
      expect(proto.status).to.equal(400);
      expect(proto.body.errors[0].field).to.equal('__proto__');

      const meta = await api.call('POST', '/api/agents/register', agentBody('meta', { metadata: { nested: { $where: 'sleep(1)' } } }));
      expect(meta.status).to.equal(400);
      expect(meta.body.errors[0].field).to.equal('metadata');

      const ctor = await api.call('PATCH', '/api/agents/1', `{"constructor":{"prototype":{"polluted":true}}}`, { 'content-type': 'application/json' });
      expect(ctor.status).to.equal(400);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);

      for (const id of ['proto', 'meta', 'x']) expect((await api.call('GET', `/api/agents/${id}`)).status).to.equal(404);
    });

    it('refuses metadata over 8 KB', async () => {
      const res = await api.call('POST', '/api/agents/register', agentBody('big', { metadata: { blob: 'x'.repeat(9000) } }));
      expect(res.status).to.equal(400);
      expect(res.body.errors[0]).to.deep.include({ field: 'metadata' });
    });

    it('answers malformed JSON with 400, other media types with 415, and huge bodies with 413', async () => {
      const malformed = await api.call('POST', '/api/agents/register', '{"id": ', { 'content-type': 'application/json' });
      expect(malformed.status).to.equal(400);
      expect(malformed.headers.get('content-type')).to.match(/problem\+json/);
      const text = await api.call('POST', '/api/agents/register', 'id=1', { 'content-type': 'text/plain' });
      expect(text.status).to.equal(415);
      const huge = await api.call('POST', '/api/agents/register', agentBody('huge', { instructions: 'x'.repeat(400_000) }));
      expect(huge.status).to.equal(413);
      expect(huge.body.status).to.equal(413);
    });
  });

  describe('authentication', () => {
    it('refuses /api without a key or with a wrong one, and never needs one on health checks', async () => {
      const none = await fetch(`${api.url}/api/agents`);
      expect(none.status).to.equal(401);
      expect(none.headers.get('content-type')).to.match(/problem\+json/);
      const wrong = await fetch(`${api.url}/api/agents`, { headers: { authorization: `Bearer ${TEST_API_KEY}x` } });
      expect(wrong.status).to.equal(401);
      const body = await wrong.text();
      expect(body).not.to.include(TEST_API_KEY);
      expect((await fetch(`${api.url}/healthz`)).status).to.equal(200);
      const ready = await fetch(`${api.url}/readyz`);
      expect(ready.status).to.equal(200);
      expect(await ready.json()).to.deep.equal({ status: 'ready', redis: true, mongo: true });
    });
  });
});

describe('API description', () => {
  it('is generated from the validation schemas: the contract fields, their limits, and every route', async () => {
    const api = await startTestApi();
    try {
      const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as any;
      expect(doc.openapi).to.equal('3.1.0');
      const agent = doc.components.schemas.AgentConfig;
      expect(agent.required).to.include.members(['id', 'name', 'instructions', 'stt', 'llm', 'tts']);
      expect(agent.properties.stt.properties.provider.enum).to.deep.equal(['deepgram', 'openai']);
      expect(agent.properties.maxConcurrentSessions.minimum).to.equal(1);
      expect(agent.additionalProperties).to.equal(false);
      expect(doc.components.schemas.SessionRequest.properties).to.have.keys('agentId', 'version', 'participant', 'roomName', 'metadata', 'scheduledAt', 'callbackUrl');
      expect(doc.components.schemas.SessionRequest.properties.version).to.include({ type: 'integer', minimum: 1 });
      expect(doc.components.schemas.SessionRequest.properties.version.description).to.match(/current version/);
      expect(doc.components.schemas.BatchRequest.anyOf[0].properties.sessions.items.$ref).to.equal('#/components/schemas/SessionRequest');
      expect(doc.components.schemas.BatchRequest.anyOf[1].properties.version).to.include({ type: 'integer', minimum: 1 });
      expect(Object.keys(doc.paths)).to.include.members(['/api/agents/register', '/api/sessions', '/api/sessions/batch', '/api/batches/{id}/events']);
    } finally {
      await api.stop();
    }
  });
});
