import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { TokenVerifier } from 'livekit-server-sdk';
import { SIGNATURE_HEADER, verifySignature } from '../../common/callbacks.js';
import { agentBody, spawnApi, testApiEnv, type ApiProcess } from '../support/api.js';
import { spawnDispatcher } from '../support/dispatcher.js';
import { concatPcm, silencePcm, speechPcm } from '../support/fakes/audio.js';
import { startFakeBitHuman, type FakeBitHuman } from '../support/fakes/bithuman.js';
import { startFakeDeepgram, type FakeDeepgram } from '../support/fakes/deepgram.js';
import { closeServer, listenLocal, readBody } from '../support/fakes/http.js';
import { lastUserText, startFakeOpenAI, type FakeOpenAI } from '../support/fakes/openai.js';
import { PhraseRecognizer } from '../support/fakes/recognizer.js';
import { OwnLivekit } from '../support/livekit-server.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';

const RATE = 48000;
const ASK = 'book a table for two tonight';
const ANSWER = 'Your table for two is booked.';

/** Every secret the deployment is configured with: distinctive, so any copy of one in a log is found. */
const SECRETS = {
  API_KEY: 'logs-api-key-one-6c1f0a9e2b',
  API_KEY_2: 'logs-api-key-two-93d84e7a11',
  ADMIN_API_KEY: 'logs-admin-key-5e0b7c2d4f',
  LIVEKIT_API_SECRET: 'logs-livekit-secret-0f3a9c7e1d5b8a2e4c6f0b9d',
  CALLBACK_SECRET: 'logs-callback-secret-7a2c9e4b1d',
  OPENAI_API_KEY: 'sk-logs-openai-key-8b3e1f6a0c',
  DEEPGRAM_API_KEY: 'logs-deepgram-key-2d7f0a5c9e',
  BITHUMAN_API_SECRET: 'logs-bithuman-secret-4c8e2a6f0b',
};
const LIVEKIT_API_KEY = 'logs-livekit-key';

/** A call to the API process with one of its keys. */
async function call(api: ApiProcess, method: string, path: string, body?: unknown, key = SECRETS.API_KEY) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Waits for a process to exit after `signal` (SIGTERM: it writes its shutdown lines), then SIGKILL if it hangs. */
async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

describe('every log at debug level, through a real session with a conversation, holds no configured secret', function () {
  this.timeout(240_000);
  let openai: FakeOpenAI;
  let deepgram: FakeDeepgram;
  let bithuman: FakeBitHuman;
  let livekit: OwnLivekit;
  let api: ApiProcess;
  let dispatcher: ChildProcess & { lines: string[] };
  let worker: WorkerProcess;
  let receiver: Awaited<ReturnType<typeof listenLocal>>;
  const callbacks: { body: string; signature: string }[] = [];
  const tokens: string[] = [];

  before(async function () {
    this.timeout(150_000);
    // The providers check their keys: a session that works proves each secret was used.
    [openai, deepgram, bithuman] = await Promise.all([
      startFakeOpenAI({ apiKey: SECRETS.OPENAI_API_KEY }),
      startFakeDeepgram({ apiKey: SECRETS.DEEPGRAM_API_KEY }),
      startFakeBitHuman({ secret: SECRETS.BITHUMAN_API_SECRET }),
    ]);
    deepgram.setRecognizer(new PhraseRecognizer([ASK]));
    openai.setReply((req) => (lastUserText(req) === ASK ? ANSWER : 'Sorry?'));
    receiver = await listenLocal((req, res) => {
      void readBody(req).then((b) => {
        callbacks.push({ body: b.toString(), signature: String(req.headers[SIGNATURE_HEADER] ?? '') });
        res.end();
      });
    });

    livekit = await OwnLivekit.create({ apiKey: LIVEKIT_API_KEY, apiSecret: SECRETS.LIVEKIT_API_SECRET });
    const env = testApiEnv({
      LOG_LEVEL: 'debug',
      DISPATCH_MODE: 'capacity',
      API_KEYS: `${SECRETS.API_KEY},${SECRETS.API_KEY_2}`,
      ADMIN_API_KEYS: SECRETS.ADMIN_API_KEY,
      CALLBACK_SECRET: SECRETS.CALLBACK_SECRET,
      LIVEKIT_URL: livekit.url,
      LIVEKIT_API_KEY,
      LIVEKIT_API_SECRET: SECRETS.LIVEKIT_API_SECRET,
    });
    api = await spawnApi(env);
    livekit.webhookUrl = `${api.url}/api/livekit/webhook`;
    await livekit.up();
    dispatcher = await spawnDispatcher(env, { LOG_LEVEL: 'debug' });
    worker = await spawnWorker(
      env,
      {
        LOG_LEVEL: 'debug',
        OPENAI_API_KEY: SECRETS.OPENAI_API_KEY,
        OPENAI_BASE_URL: openai.url,
        DEEPGRAM_API_KEY: SECRETS.DEEPGRAM_API_KEY,
        DEEPGRAM_BASE_URL: deepgram.url,
        BITHUMAN_API_SECRET: SECRETS.BITHUMAN_API_SECRET,
        BITHUMAN_API_URL: bithuman.url,
      },
      'start',
    );
  });
  after(async function () {
    this.timeout(60_000);
    await worker?.kill();
    if (dispatcher) await stop(dispatcher, 'SIGKILL');
    await api?.kill();
    await livekit?.destroy();
    await Promise.all([openai?.close(), deepgram?.close(), bithuman?.close(), receiver && closeServer(receiver.server)]);
  });

  it('API, dispatcher and worker (its job processes included) log at debug through a conversation, an avatar, callbacks and refused requests, and no line holds a secret or a participant token', async () => {
    expect((await call(api, 'POST', '/api/agents/register', agentBody('talk', { greeting: 'Talk desk here.' }))).status).to.equal(201);
    expect((await call(api, 'POST', '/api/agents/register', agentBody('face', { avatarModel: 'avatar-7', greeting: 'Hello.' }), SECRETS.API_KEY_2)).status).to.equal(201);

    // A conversation: the greeting, then a phrase answered, as audio crossing WebRTC.
    const s = (await call(api, 'POST', '/api/sessions', { agentId: 'talk', callbackUrl: `http://127.0.0.1:${receiver.port}/cb` })).body;
    tokens.push(s.participantToken);
    const user = await TestUser.join(livekit.url, s.participantToken, { microphone: true });
    try {
      const joined = Date.now();
      await until(async () => user.said('Talk desk here.'), 60_000, 50);
      await user.agentQuiet(joined);
      await user.speak(concatPcm(speechPcm(ASK, RATE), silencePcm(1.2, RATE)), RATE);
      await until(async () => user.said(ANSWER), 45_000, 50);
      // A second token for the same session, as a client asks for one.
      tokens.push((await call(api, 'POST', `/api/sessions/${s.sessionId}/token`, {})).body.participantToken);
    } finally {
      await user.leave();
    }
    await until(async () => (await call(api, 'GET', `/api/sessions/${s.sessionId}`)).body.status === 'ended', 30_000, 200);

    // An avatar: BitHuman asked with its secret.
    const face = (await call(api, 'POST', '/api/sessions', { agentId: 'face' })).body;
    tokens.push(face.participantToken);
    const faceUser = await TestUser.join(livekit.url, face.participantToken);
    try {
      const req = await until(async () => bithuman.requests.find((r) => (r.body as { room_name?: string }).room_name === face.roomName), 60_000, 100);
      expect(req.status, 'BitHuman accepted the secret').to.equal(200);
    } finally {
      await faceUser.leave();
    }

    // Refused requests carrying secrets where they do not belong.
    await call(api, 'GET', '/api/agents', undefined, SECRETS.LIVEKIT_API_SECRET);
    await call(api, 'GET', '/api/agents', undefined, `${SECRETS.API_KEY}x`);
    await fetch(`${api.url}/admin/queues`, { headers: { authorization: `Bearer ${SECRETS.ADMIN_API_KEY}` } });
    await fetch(`${api.url}/admin/queues`, { headers: { authorization: `Bearer ${SECRETS.CALLBACK_SECRET}` } });
    await fetch(`${api.url}/api/livekit/webhook`, { method: 'POST', headers: { authorization: SECRETS.LIVEKIT_API_SECRET, 'content-type': 'application/webhook+json' }, body: '{}' });

    // The callbacks came, signed with the callback secret.
    await until(async () => callbacks.some((c) => JSON.parse(c.body).status === 'ended'), 30_000, 200);
    for (const c of callbacks) expect(verifySignature(SECRETS.CALLBACK_SECRET, c.body, c.signature)).to.equal(true);

    // Their last lines too: each stops as in production (the worker's job processes with it).
    await stop(dispatcher);
    // SIGTERM drains the worker (its sessions are over); one that hangs is killed after 20 s.
    await Promise.race([worker.kill('SIGTERM'), new Promise((r) => setTimeout(r, 20_000))]);
    await worker.kill('SIGKILL');
    await stop(api.child);

    const logs = { api: api.lines, dispatcher: dispatcher.lines, worker: worker.lines };
    // Each was at debug level and had something to say; the worker's lines include its job processes' own.
    for (const [name, lines] of Object.entries(logs)) {
      expect(lines.filter((l) => /"level":20\b/.test(l)).length, `${name} debug lines`).to.be.above(0);
    }
    expect(worker.lines.some((l) => l.includes('agent session started')), 'job process lines in the worker log').to.equal(true);
    expect(worker.lines.some((l) => l.includes('agent config resolved')), 'job process lines in the worker log').to.equal(true);

    const leaks: string[] = [];
    for (const [name, lines] of Object.entries(logs)) {
      const text = lines.join('\n');
      for (const [what, secret] of Object.entries(SECRETS)) if (text.includes(secret)) leaks.push(`${name}: ${what}`);
      for (const [i, token] of tokens.entries()) if (text.includes(token)) leaks.push(`${name}: participant token ${i}`);
      // Any token signed with the LiveKit key (the agent's own, the avatar's) is a credential too.
      const verifier = new TokenVerifier(LIVEKIT_API_KEY, SECRETS.LIVEKIT_API_SECRET);
      for (const jwt of text.match(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g) ?? []) {
        if (await verifier.verify(jwt).then(() => true, () => false)) leaks.push(`${name}: a LiveKit token (${jwt.slice(0, 24)}…)`);
      }
    }
    expect(leaks).to.deep.equal([]);
  });
});
