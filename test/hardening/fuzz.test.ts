import { expect } from 'chai';
import fc from 'fast-check';
import { Queue } from 'bullmq';
import { SESSIONS_QUEUE } from '../../common/queue.js';
import { createRedis } from '../../common/redis.js';
import { agentBody, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';
import { stack } from '../support/env.js';

const REQUESTS = 10_000;

/** Values that have broken JSON APIs before: operators, prototype keys, odd unicode, deep and huge shapes. */
const nasty = fc.oneof(
  fc.constantFrom<unknown>(
    { $ne: null },
    { $gt: '' },
    { $where: 'sleep(1000)' },
    ['$ne', null],
    null,
    true,
    -1,
    1e308,
    -0,
    '',
    ' ',
    '\u0000',
    '\ud800',
    'ᚠᛇᚻ᛫ᛒᛦᚦ',
    '👩‍👩‍👧‍👦',
    'a'.repeat(70),
    '../../etc/passwd',
    'agent-1-room',
    '<script>alert(1)</script>',
    { toString: 'x' },
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }),
);

const PROTO_BODIES = [
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"agentId":"x","metadata":{"__proto__":{"polluted":true}}}',
  '{"id":"p","name":"n","instructions":"i","stt":{"provider":"deepgram"},"llm":{"provider":"openai","model":"m"},"tts":{"provider":"openai"},"metadata":{"a.b":1}}',
  '[' .repeat(3000) + ']'.repeat(3000),
  `{"sessions":[${'{"agentId":"nobody"},'.repeat(50)}{}]}`,
  '{"id": 1e400}',
  '\u00ff\u00fe{}',
];

const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/xml', ''];

function mutate(base: Record<string, unknown>) {
  return fc.tuple(fc.constantFrom(...Object.keys(base), 'extra', '__proto__', '$set'), nasty, fc.boolean()).map(([key, value, drop]) => {
    const copy: Record<string, unknown> = { ...base };
    if (drop) delete copy[key];
    else Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
    return copy;
  });
}

interface FuzzRequest {
  method: string;
  path: string;
  body?: string;
  contentType?: string;
  auth?: string;
}

const segment = fc.oneof(fc.constantFrom('nobody', 'ses_000000000000000000000', 'bat_000000000000000000000', '%00', '..', '%2e%2e', 'a%20b', '$ne', '1e9'), fc.string({ maxLength: 20 }).map(encodeURIComponent));
const query = fc.dictionary(fc.constantFrom('limit', 'cursor', 'agentId', 'status', 'batchId', 'x'), fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('-1', '0', '999999', 'NaN', '[object Object]'))).map((q) => new URLSearchParams(q).toString());

const request: fc.Arbitrary<FuzzRequest> = fc.oneof(
  fc.tuple(fc.oneof(mutate(agentBody('fz')), nasty), fc.constantFrom(...CONTENT_TYPES)).map(([b, ct]) => ({ method: 'POST', path: '/api/agents/register', body: JSON.stringify(b), contentType: ct })),
  fc.tuple(segment, fc.oneof(nasty, mutate({ name: 'x', llm: { model: 'm' } }))).map(([id, b]) => ({ method: 'PATCH', path: `/api/agents/${id}`, body: JSON.stringify(b), contentType: 'application/json' })),
  fc.tuple(segment, nasty).map(([id, v]) => ({ method: 'POST', path: `/api/agents/${id}/rollback`, body: JSON.stringify({ version: v }), contentType: 'application/json' })),
  fc.tuple(segment, segment).map(([id, v]) => ({ method: 'GET', path: `/api/agents/${id}/versions/${v}` })),
  query.map((q) => ({ method: 'GET', path: `/api/agents?${q}` })),
  query.map((q) => ({ method: 'GET', path: `/api/sessions?${q}` })),
  fc.oneof(mutate({ agentId: 'nobody', participant: { identity: 'u' }, metadata: { a: 1 }, scheduledAt: '2030-01-01T00:00:00Z', callbackUrl: 'http://127.0.0.1:9/x' }), nasty).map((b) => ({
    method: 'POST',
    path: '/api/sessions',
    body: JSON.stringify(b),
    contentType: 'application/json',
  })),
  fc.oneof(fc.array(fc.oneof(nasty, mutate({ agentId: 'nobody' })), { maxLength: 20 }).map((sessions) => ({ sessions })), mutate({ agentId: 'nobody', count: 3 }), nasty).map((b) => ({
    method: 'POST',
    path: '/api/sessions/batch',
    body: JSON.stringify(b),
    contentType: 'application/json',
  })),
  fc.tuple(fc.constantFrom('GET', 'DELETE'), fc.constantFrom('sessions', 'batches'), segment).map(([method, kind, id]) => ({ method, path: `/api/${kind}/${id}` })),
  fc.constantFrom(...PROTO_BODIES).chain((body) => fc.constantFrom('/api/agents/register', '/api/sessions', '/api/sessions/batch', '/api/agents/fz').map((path) => ({ method: path === '/api/agents/fz' ? 'PATCH' : 'POST', path, body, contentType: 'application/json' }))),
  fc.tuple(fc.string({ maxLength: 200 }), fc.oneof(fc.constant(undefined), fc.string({ maxLength: 60 }))).map(([body, auth]) => ({ method: 'POST', path: '/api/livekit/webhook', body, contentType: 'application/webhook+json', ...(auth ? { auth } : {}) })),
  fc.tuple(fc.constantFrom('', 'Bearer', 'Bearer ', `Bearer ${TEST_API_KEY} extra`, 'Basic Zm9vOmJhcg==', `bearer ${TEST_API_KEY}`, '\t'), fc.constantFrom('/api/agents', '/api/sessions', '/api/metrics')).map(([auth, path]) => ({ method: 'GET', path, auth })),
  fc.constant({ method: 'POST', path: '/api/agents/register', body: JSON.stringify(agentBody('huge', { instructions: 'x'.repeat(300_000) })), contentType: 'application/json' }),
);

describe('fuzzing every endpoint', function () {
  this.timeout(300_000);
  let api: TestApi;

  before(async () => {
    api = await startTestApi({ API_RATE_LIMIT: '10000000' });
    await api.call('POST', '/api/agents/register', agentBody('fz'));
  });
  after(() => api.stop());

  it(`answers ${REQUESTS.toLocaleString('en')} generated bad requests with 4xx problem+json, never a 5xx, and stores nothing`, async () => {
    const requests = fc.sample(request, { numRuns: REQUESTS, seed: 20261126 });
    const failures: string[] = [];
    let next = 0;
    let clientErrors = 0;
    const accepted: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < requests.length) {
          const r = requests[next++]!;
          const headers: Record<string, string> = { authorization: r.auth ?? `Bearer ${TEST_API_KEY}` };
          if (r.contentType) headers['content-type'] = r.contentType;
          const res = await fetch(`${api.url}${r.path}`, { method: r.method, headers, ...(r.body !== undefined ? { body: r.body } : {}) });
          const text = await res.text();
          if (res.status < 300 && r.method !== 'GET') accepted.push(`${r.method} ${r.path}`);
          if (res.status >= 500) failures.push(`${res.status} ${r.method} ${r.path} ${r.body?.slice(0, 120)} → ${text.slice(0, 200)}`);
          else if (res.status >= 400) {
            clientErrors++;
            const ct = res.headers.get('content-type') ?? '';
            if (!ct.startsWith('application/problem+json')) failures.push(`${res.status} without problem+json: ${r.method} ${r.path}`);
            else if (/\n\s+at |node_modules|\.ts:\d+/.test(text)) failures.push(`stack trace in body: ${r.method} ${r.path}`);
          }
        }
      }),
    );
    expect(failures.slice(0, 10)).to.deep.equal([]);
    expect(clientErrors).to.be.greaterThan(REQUESTS * 0.9);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);

    // Still up, and only accepted requests stored anything: every version beyond
    // the first is one accepted change (a mutation can be valid: dropping `greeting`),
    // and no session was queued (no agent but fz exists, and no session asked for it).
    expect((await fetch(`${api.url}/healthz`)).status).to.equal(200);
    const agents = await api.call('GET', '/api/agents?limit=200');
    const versions = agents.body.items.reduce((n: number, a: { version: number }) => n + a.version, 0);
    const changes = accepted.filter((a) => a.startsWith('POST /api/agents/register') || a.startsWith('PATCH') || a.includes('/rollback')).length;
    expect(versions - 1).to.be.at.most(changes);
    expect(accepted.filter((a) => a.includes('/api/sessions'))).to.deep.equal([]);
    const redis = createRedis(stack.REDIS_URL);
    const queue = new Queue(SESSIONS_QUEUE, { connection: redis, prefix: api.env.QUEUE_PREFIX });
    try {
      expect(Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0)).to.equal(0);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });
});
