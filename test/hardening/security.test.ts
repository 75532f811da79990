import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { expect } from 'chai';
import { TokenVerifier } from 'livekit-server-sdk';
import { agentBody, mongoUri, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';
import { stack, uniqueName } from '../support/env.js';
import { freePort } from '../support/mongo-server.js';
import { until } from '../support/sessions.js';

describe('security', function () {
  this.timeout(60_000);

  describe('rate limits and headers', () => {
    let api: TestApi;
    const OTHER_KEY = 'second-key-abcdefgh';
    before(async () => {
      api = await startTestApi({ API_RATE_LIMIT: '5', API_RATE_WINDOW: '8', API_KEYS: `${TEST_API_KEY},${OTHER_KEY}` });
    });
    after(() => api.stop());

    it('answers a key over its budget with 429, Retry-After and problem+json, without touching other keys', async () => {
      // A window long enough that the seven requests fall in one even on a loaded machine.
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<TestApi['call']>> | undefined;
      for (let i = 0; i < 7; i++) {
        const r = await api.call('GET', '/api/agents');
        statuses.push(r.status);
        if (r.status === 429) limited = r;
      }
      expect(statuses.slice(0, 5)).to.deep.equal([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).to.deep.equal([429, 429]);
      expect(Number(limited!.headers.get('retry-after'))).to.be.within(1, 8);
      expect(limited!.headers.get('content-type')).to.match(/problem\+json/);
      expect(limited!.body.status).to.equal(429);
      const other = await api.call('GET', '/api/agents', undefined, { authorization: `Bearer ${OTHER_KEY}` });
      expect(other.status).to.equal(200);
      await until(async () => (await api.call('GET', '/api/agents')).status === 200, 12_000, 250);
    });

    it('sends the standard security headers and no X-Powered-By', async () => {
      const res = await fetch(`${api.url}/healthz`);
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(res.headers.get('x-frame-options')).to.equal('SAMEORIGIN');
      expect(res.headers.get('strict-transport-security')).to.be.a('string');
      expect(res.headers.get('content-security-policy')).to.be.a('string');
      expect(res.headers.get('x-powered-by')).to.equal(null);
    });
  });

  describe('tokens', () => {
    it('participant tokens join one room only and expire after PARTICIPANT_TOKEN_TTL', async () => {
      const api = await startTestApi({ PARTICIPANT_TOKEN_TTL: '60' });
      try {
        await api.call('POST', '/api/agents/register', agentBody('t'));
        const s = (await api.call('POST', '/api/sessions', { agentId: 't' })).body;
        const claims = await new TokenVerifier(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET).verify(s.participantToken);
        expect(claims.video).to.deep.include({ room: s.roomName, roomJoin: true });
        expect(claims.video?.roomAdmin ?? false).to.equal(false);
        expect(claims.video?.roomCreate ?? false).to.equal(false);
        expect(claims.video?.roomList ?? false).to.equal(false);
        expect(claims.exp! - claims.nbf!).to.equal(60);
      } finally {
        await api.stop();
      }
    });
  });

  describe('secrets in logs', () => {
    let child: ChildProcess;
    const lines: string[] = [];
    const SECRET = 'livekit-secret-that-must-never-leak-0123';
    const KEY = 'api-key-that-must-never-leak-42';
    let url: string;

    before(async () => {
      const port = await freePort();
      const name = uniqueName('sec');
      child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
        env: {
          ...process.env,
          NODE_ENV: 'test',
          LOG_LEVEL: 'trace',
          HOST: '127.0.0.1',
          PORT: String(port),
          API_KEYS: KEY,
          REDIS_URL: stack.REDIS_URL,
          MONGODB_URI: mongoUri(name),
          QUEUE_PREFIX: name,
          LIVEKIT_URL: 'ws://127.0.0.1:9',
          LIVEKIT_API_KEY: stack.LIVEKIT_API_KEY,
          LIVEKIT_API_SECRET: SECRET,
          CALLBACK_SECRET: 'callback-secret-never-in-logs-99',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const s of [child.stdout!, child.stderr!]) readline.createInterface({ input: s }).on('line', (l) => lines.push(l));
      url = `http://127.0.0.1:${port}`;
      await until(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200, 30_000);
    });
    after(() => child.kill('SIGKILL'));

    it('never writes API keys, the LiveKit secret or the callback secret to logs or error bodies', async () => {
      const bodies: string[] = [];
      const auth = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
      const calls: [string, string, RequestInit][] = [
        ['POST', '/api/agents/register', { headers: auth, body: JSON.stringify(agentBody('s')) }],
        ['POST', '/api/sessions', { headers: auth, body: JSON.stringify({ agentId: 's' }) }],
        ['POST', '/api/sessions', { headers: auth, body: '{"broken' }],
        ['GET', '/api/agents', { headers: { authorization: `Bearer ${KEY}x` } }],
        ['GET', '/api/agents', { headers: { authorization: `Bearer ${SECRET}` } }],
        ['POST', '/api/livekit/webhook', { headers: { authorization: SECRET, 'content-type': 'application/webhook+json' }, body: '{}' }],
      ];
      for (const [method, path, init] of calls) {
        const r = await fetch(`${url}${path}`, { method, ...init });
        bodies.push(await r.text());
      }
      // A cancel makes the API call LiveKit (unreachable here): its error must not carry the secret either.
      const created = JSON.parse(bodies[1]!);
      bodies.push(await (await fetch(`${url}/api/sessions/${created.sessionId}`, { method: 'DELETE', headers: auth })).text());
      await new Promise((r) => setTimeout(r, 300));
      const everything = [...lines, ...bodies].join('\n');
      expect(lines.length).to.be.greaterThan(0);
      for (const secret of [KEY, SECRET, 'callback-secret-never-in-logs-99']) expect(everything).not.to.include(secret);
      expect(created.participantToken).to.be.a('string');
      expect(lines.join('\n')).not.to.include(created.participantToken);
    });
  });
});
