import { expect } from 'chai';
import { Redis } from 'ioredis';
import { WorkerCapacity, type WorkerInfo } from '../../common/workers/capacity.js';
import { startBanner } from '../../tools/lib/banner.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { stack } from '../support/env.js';

const ADMIN_KEY = 'test-admin-key-0123456789';

function workerInfo(providers?: WorkerInfo['providers']): WorkerInfo {
  return { capacity: 2, busy: 0, free: 2, warm: 1, idle: 1, cpu: 0, guard: false, draining: false, ready: true, host: 'test', pid: 1, ...(providers ? { providers } : {}) };
}

describe('operator experience', () => {
  describe('the start banner', () => {
    it('names the API, its dev key, LiveKit, the docs page, the playground, the queue board and metrics', () => {
      const lines = startBanner({ OPENAI_API_KEY: 'sk-test', DEEPGRAM_API_KEY: 'dg-test' }).join('\n');
      expect(lines).to.include('http://127.0.0.1:8080');
      expect(lines).to.include('key: dev-api-key');
      expect(lines).to.include('ws://127.0.0.1:7880');
      expect(lines).to.include('http://127.0.0.1:8080/docs');
      expect(lines).to.include('http://127.0.0.1:8080/playground');
      expect(lines).to.include('http://127.0.0.1:8080/admin/queues');
      expect(lines).to.include('dev-admin-key');
      expect(lines).to.include('/metrics');
      expect(lines).not.to.include('warning');
    });

    it('warns that sessions fail with provider_not_configured when the provider keys are missing, naming the variables', () => {
      const none = startBanner({}).join('\n');
      expect(none).to.match(/warning: .*provider_not_configured/);
      expect(none).to.include('OPENAI_API_KEY').and.include('DEEPGRAM_API_KEY').and.include('OPENAI_BASE_URL');
      const noDeepgram = startBanner({ OPENAI_API_KEY: 'sk-test' }).join('\n');
      expect(noDeepgram).to.match(/warning: DEEPGRAM_API_KEY not set/);
      expect(noDeepgram).not.to.include('OPENAI_BASE_URL');
    });

    it('never prints keys set in the environment', () => {
      const lines = startBanner({ API_KEYS: 'secret-key-123456', ADMIN_API_KEYS: 'admin-secret-123456' }).join('\n');
      expect(lines).not.to.include('secret-key-123456');
      expect(lines).not.to.include('admin-secret-123456');
    });
  });

  describe('registering an agent whose providers no worker serves', () => {
    let api: TestApi;
    let redis: Redis;
    let capacity: WorkerCapacity;
    before(async () => {
      api = await startTestApi({ DISPATCH_MODE: 'capacity' });
      redis = new Redis(stack.REDIS_URL);
      capacity = new WorkerCapacity(redis, api.env.QUEUE_PREFIX!, api.env.AGENT_NAME!);
    });
    after(async () => {
      await api.stop();
      redis.disconnect();
    });
    afterEach(async () => {
      await capacity.leave('w1');
      await capacity.leave('w2');
    });

    it('with no worker heartbeat: registered (201) with a warning that no worker is known', async () => {
      const res = await api.call('POST', '/api/agents/register', agentBody('none'));
      expect(res.status).to.equal(201);
      expect(res.body.warnings).to.be.an('array').with.length(1);
      expect(res.body.warnings[0]).to.match(/no agent worker is running/);
    });

    it('with a worker that has only the OpenAI key: a Deepgram agent is registered with a provider_not_configured warning', async () => {
      await capacity.heartbeat('w1', workerInfo(['openai']));
      const res = await api.call('POST', '/api/agents/register', agentBody('dg'));
      expect(res.status).to.equal(201);
      expect(res.body.warnings).to.have.length(1);
      expect(res.body.warnings[0]).to.include('provider_not_configured').and.include('DEEPGRAM_API_KEY');
      const again = await api.call('POST', '/api/agents/register', agentBody('dg', { name: 'Changed' }));
      expect(again.status).to.equal(200);
      expect(again.body.warnings).to.have.length(1);
      // The stored agent carries no warning.
      expect((await api.call('GET', '/api/agents/dg')).body).not.to.have.property('warnings');
    });

    it('with a worker that serves every provider the agent needs: no warnings', async () => {
      await capacity.heartbeat('w1', workerInfo(['openai']));
      await capacity.heartbeat('w2', workerInfo(['openai', 'deepgram']));
      const res = await api.call('POST', '/api/agents/register', agentBody('ok'));
      expect(res.status).to.equal(201);
      expect(res.body).not.to.have.property('warnings');
      const openaiOnly = await api.call('POST', '/api/agents/register', agentBody('oa', { stt: { provider: 'openai' } }));
      expect(openaiOnly.body).not.to.have.property('warnings');
    });

    it('in immediate mode (agents may run elsewhere) nothing is checked', async () => {
      const immediate = await startTestApi();
      try {
        const res = await immediate.call('POST', '/api/agents/register', agentBody('imm'));
        expect(res.status).to.equal(201);
        expect(res.body).not.to.have.property('warnings');
      } finally {
        await immediate.stop();
      }
    });
  });

  describe('GET /docs and the queue board', () => {
    let api: TestApi;
    before(async () => {
      api = await startTestApi({ ADMIN_API_KEYS: ADMIN_KEY });
    });
    after(async () => {
      await api.stop();
    });

    it('serves the docs page without a key, with every asset from this server and none from elsewhere', async () => {
      const page = await fetch(`${api.url}/docs`);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/text\/html/);
      const csp = page.headers.get('content-security-policy')!;
      expect(csp).to.include("script-src 'self'");
      const html = await page.text();
      expect(html).not.to.match(/https?:\/\//);
      expect(html).not.to.match(/<script>(?!<\/script>)/); // no inline script: the CSP would block it
      const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(assets).to.include.members(['/docs/assets/swagger-ui.css', '/docs/assets/swagger-ui-bundle.js', '/docs/init.js']);
      for (const a of assets) {
        const res = await fetch(`${api.url}${a}`);
        expect(res.status, a).to.equal(200);
        expect((await res.arrayBuffer()).byteLength, a).to.be.greaterThan(100);
      }
      const init = await (await fetch(`${api.url}/docs/init.js`)).text();
      expect(init).to.include("url: '/openapi.json'");
      expect(init).not.to.match(/https?:\/\//);
    });

    it('the board refuses requests without the admin key (401 with a Basic challenge) and with a wrong or API key (403)', async () => {
      const none = await fetch(`${api.url}/admin/queues/api/queues`);
      expect(none.status).to.equal(401);
      expect(none.headers.get('www-authenticate')).to.match(/^Basic/);
      expect(none.headers.get('content-type')).to.match(/problem\+json/);
      const apiKey = await fetch(`${api.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${api.env.API_KEYS}` } });
      expect(apiKey.status).to.equal(403);
      const page = await fetch(`${api.url}/admin/queues`);
      expect(page.status).to.equal(401);
    });

    it('lists the three queues with their job counts, by Bearer or Basic', async () => {
      await api.call('POST', '/api/agents/register', agentBody('board'));
      const batch = await api.call('POST', '/api/sessions/batch', { agentId: 'board', count: 3, scheduledAt: new Date(Date.now() + 3_600_000).toISOString() });
      expect(batch.status, JSON.stringify(batch.body)).to.equal(202);
      const res = await fetch(`${api.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      expect(res.status).to.equal(200);
      const body = (await res.json()) as { queues: { name: string; counts: Record<string, number>; readOnlyMode: boolean }[] };
      expect(body.queues.map((q) => q.name).sort()).to.deep.equal(['callbacks', 'join-checks', 'sessions']);
      const sessions = body.queues.find((q) => q.name === 'sessions')!;
      expect(sessions.counts.delayed).to.equal(3);
      expect(sessions.readOnlyMode).to.equal(true);
      const basic = Buffer.from(`ops:${ADMIN_KEY}`).toString('base64');
      const page = await fetch(`${api.url}/admin/queues`, { headers: { authorization: `Basic ${basic}` } });
      expect(page.status).to.equal(200);
      const html = await page.text();
      expect(html).to.include('<div id="root">');
      expect(html).not.to.match(/<link[^>]+https?:\/\//);
    });

    it('the board is off in production without ADMIN_API_KEYS, and its dev key is refused there', async () => {
      const prodEnv = { NODE_ENV: 'production', API_KEYS: 'prod-api-key-123456', CALLBACK_SECRET: 'prod-callback-secret-123', LIVEKIT_API_KEY: 'prod-livekit-key', LIVEKIT_API_SECRET: 'prod-livekit-secret-0123456789-0123456789' };
      let prod: TestApi | undefined;
      try {
        prod = await startTestApi(prodEnv);
        const res = await fetch(`${prod.url}/admin/queues/api/queues`, { headers: { authorization: 'Bearer dev-admin-key' } });
        expect(res.status).to.equal(404);
      } finally {
        await prod?.stop();
      }
      let error: Error | undefined;
      await startTestApi({ ...prodEnv, ADMIN_API_KEYS: 'dev-admin-key' }).then((a) => a.stop(), (e: Error) => (error = e));
      expect(error?.message).to.match(/ADMIN_API_KEYS: the development default is refused/);
    });
  });
});
