import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, TEST_OUTPUT_DIR } from '../../tools/lib/paths.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { agentBody, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { concatPcm, silencePcm, speechPcm, wavFromPcm } from '../support/fakes/audio.js';
import { lastUserText, type ChatRequest, type FakeOpenAI } from '../support/fakes/openai.js';
import { PhraseRecognizer } from '../support/fakes/recognizer.js';
import { sample } from '../support/prometheus-text.js';
import { freePort } from '../support/own-server.js';
import { until } from '../support/sessions.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

const OUT = path.join(TEST_OUTPUT_DIR, 'playground');
const RATE = 48000;
const GREETING = 'Playground desk here.';
const ASK = 'book a table for two tonight';
const ANSWER = 'Your table for two is booked.';
/** The reply's loudness the page must measure with WebAudio (RMS, full scale 1); the fake TTS tone is far above it, silence far below. */
const REPLY_FLOOR = 0.03;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** In the page: whether its agent meter stays below the audible floor for a second. */
const QUIET_FOR_A_SECOND = `new Promise((resolve) => {
  let loud = false;
  const t = setInterval(() => { loud = loud || Number(document.getElementById('agent-meter').dataset.level) > 0.01; }, 20);
  setTimeout(() => { clearInterval(t); resolve(!loud); }, 1000);
})`;

/** The page's transcript, as shown. */
async function transcript(page: Page): Promise<{ who: string; text: string; final: boolean }[]> {
  // (The page's DOM, typed loosely: the tests compile without the DOM library.)
  return page.locator('#transcript .line').evaluateAll((lines: any[]) =>
    lines.map((l) => ({ who: String(l.dataset.who), text: String(l.querySelector('.text').textContent ?? ''), final: l.dataset.final === 'true' })),
  );
}

/** Every request, WebSocket and console line of a page, to check where it went and what it said. */
function watch(page: Page) {
  const urls: string[] = [];
  const sockets: string[] = [];
  const console: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('console', (m) => console.push(m.text()));
  page.on('pageerror', (e) => console.push(e.message));
  return { urls, sockets, console };
}

/** Waits for a transcript line; on a timeout the error shows the transcript and what the recognizer decided. */
async function line(page: Page, what: string, match: (l: { who: string; text: string; final: boolean }) => boolean, ms: number, recognizer?: PhraseRecognizer) {
  await until(async () => (await transcript(page)).some(match), ms, 100).catch(async () => {
    throw new Error(`no ${what} within ${ms} ms; transcript: ${JSON.stringify(await transcript(page))}; recognizer: ${JSON.stringify(recognizer?.decisions ?? [])}`);
  });
}

async function useKey(page: Page, key: string) {
  await page.locator('#api-key').fill(key);
  await page.locator('#use-key').click();
}

describe('the playground page in Chromium: talking to an agent through the API', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let api: TestApi;
  let openai: FakeOpenAI;
  let worker: WorkerProcess;
  let browser: Browser;
  let recognizer: PhraseRecognizer;
  const contexts: BrowserContext[] = [];

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
    contexts.push(context);
    return context.newPage();
  }

  before(async function () {
    this.timeout(180_000);
    mkdirSync(OUT, { recursive: true });
    stack = await startWorkerStack();
    ({ api, openai } = stack);
    // The transcript is what the page's microphone said: a broken audio path cannot produce the answer.
    recognizer = new PhraseRecognizer([ASK]);
    stack.deepgram.setRecognizer(recognizer);
    openai.setReply((req: ChatRequest) => (lastUserText(req) === ASK ? ANSWER : 'Sorry, I did not catch that.'));
    await api.call('POST', '/api/agents/register', agentBody('play', { name: 'Playground agent', greeting: GREETING }));
    worker = await spawnWorker(api.env, stack.providers);
    // The microphone Chromium fakes: two seconds of silence (the agent subscribes meanwhile), the phrase, then silence (the file plays once from when the page opens it).
    const wav = path.join(OUT, 'microphone.wav');
    writeFileSync(wav, wavFromPcm(concatPcm(silencePcm(2, RATE), speechPcm(ASK, RATE), silencePcm(3, RATE)), RATE));
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [...CHROMIUM_ARGS, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}%noloop`],
    });
  });
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });
  after(async function () {
    this.timeout(60_000);
    await browser?.close();
    await worker?.kill();
    await stack?.stop();
  });

  it('serves the page with a policy that allows this server and the LiveKit URL only', async () => {
    const res = await fetch(`${api.url}/playground`);
    expect(res.status).to.equal(200);
    const csp = res.headers.get('content-security-policy')!;
    const connect = /connect-src ([^;]+)/.exec(csp)![1]!.trim().split(/\s+/);
    const lk = new URL(api.env.LIVEKIT_URL!);
    expect(connect).to.have.members(["'self'", `ws://${lk.host}`, `http://${lk.host}`]);
    expect(csp).to.match(/script-src 'self'(;|$)/);
    expect(csp).to.match(/default-src 'self'(;|$)/);
    expect(csp).not.to.include('upgrade-insecure-requests');
    // livekit-client comes from this server, as an ES module.
    const lib = await fetch(`${api.url}/playground/vendor/livekit-client.mjs`);
    expect(lib.status).to.equal(200);
    expect(lib.headers.get('content-type')).to.match(/javascript/);
    expect(await lib.text()).to.match(/export\s*\{/);
    expect((await fetch(`${api.url}/playground/vendor/livekit-client.esm.mjs.map`)).status, 'its source map').to.equal(200);
  });

  it('a conversation: the session moves to active, the agent greets, hears the microphone, answers audibly, and each turn has its latency', async () => {
    const page = await newPage();
    const seen = watch(page);
    await page.goto(`${api.url}/playground`);
    await useKey(page, TEST_API_KEY);
    await page.locator('#agent option[value="play"]').waitFor({ state: 'attached' });
    await page.locator('#agent').selectOption('play');
    // The microphone is turned on once the greeting is over, so the phrase is not spoken over it.
    await page.locator('#mic-at-start').uncheck();
    await page.locator('#start').click();

    await page.locator('#agent-presence[data-present="true"]').waitFor({ timeout: 60_000 });
    await page.locator('#status[data-status="active"]').waitFor({ timeout: 30_000 });
    const steps = await page.locator('#transitions li').evaluateAll((l: any[]) => l.map((e) => String(e.dataset.status)));
    expect(steps.filter((s) => s !== 'dispatching'), 'the states the page showed').to.deep.equal(['queued', 'dispatched', 'active']);
    const sessionId = (await page.locator('#session-id').innerText()).trim();

    await line(page, 'greeting', (l) => l.who === 'agent' && l.final && l.text.includes(GREETING), 60_000);
    // Quiet for a second: the greeting's audio is over.
    await until(async () => page.evaluate(QUIET_FOR_A_SECOND) as Promise<boolean>, 30_000, 0);
    await page.locator('#mic-toggle').click();
    await page.locator('#mic-toggle[data-on="true"]').waitFor();

    // The phrase, recognized from the audio that crossed WebRTC, then the reply, as text.
    await line(page, 'final transcript of the phrase', (l) => l.who === 'user' && l.final && l.text === ASK, 45_000, recognizer);
    await line(page, 'reply', (l) => l.who === 'agent' && l.text.includes(ANSWER), 45_000, recognizer);
    await page.screenshot({ path: path.join(OUT, 'conversation.png'), fullPage: true });

    // The reply's audio, measured by the page's analyser, and the latency it measured for the turn.
    const turn = page.locator('#turns tbody tr').first();
    await turn.locator('td.measured').filter({ hasText: /^\d+$/ }).waitFor({ timeout: 15_000 });
    const measured = Number(await turn.locator('td.measured').innerText());
    expect(measured, 'ms from the end of speech to the reply, measured by the page').to.be.above(0);
    await until(async () => Number(await turn.getAttribute('data-reply-peak')) > REPLY_FLOOR, 15_000, 100);
    // The worker's own figure for the turn, from its data message: the number its metric recorded. (The agents library
    // gives a reply a voice-to-voice figure only when it knows when the user stopped speaking; on a loaded machine
    // some turns come without one, are not counted, and nothing is sent.)
    const workerSeconds = await until(async () => {
      const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
      return (sample(text, 'agent_runtime_turn_latency_seconds_count') ?? 0) >= 1 ? sample(text, 'agent_runtime_turn_latency_seconds_sum')! : undefined;
    }, 30_000, 200).catch(() => undefined);
    if (workerSeconds !== undefined) {
      await turn.locator('td.worker').filter({ hasText: /^\d+$/ }).waitFor({ timeout: 10_000 });
      expect(Number(await turn.locator('td.worker').innerText()), "the worker's ms").to.equal(Math.round(workerSeconds * 1000));
    } else {
      process.stderr.write('      (the agent session gave this turn no voice-to-voice figure: not counted, nothing sent)\n');
    }
    await line(page, 'final reply', (l) => l.who === 'agent' && l.final && l.text.includes(ANSWER), 30_000);

    const lines = await transcript(page);
    // Interim text was replaced by the final one, not added to it: one line for the phrase.
    expect(lines.filter((l) => l.who === 'user'), 'the user lines').to.deep.equal([{ who: 'user', text: ASK, final: true }]);
    expect(lines.filter((l) => l.who === 'agent').map((l) => l.text)).to.deep.equal([GREETING, ANSWER]);
    await page.screenshot({ path: path.join(ROOT, 'docs', 'images', 'playground.png') });

    // The key stayed in the tab: not in the page, its URL, a request URL or the console.
    expect(await page.content()).not.to.include(TEST_API_KEY);
    expect(page.url()).not.to.include(TEST_API_KEY);
    expect(seen.urls.filter((u) => u.includes(TEST_API_KEY))).to.deep.equal([]);
    expect(seen.console.filter((l) => l.includes(TEST_API_KEY))).to.deep.equal([]);
    expect(await page.evaluate('Object.values(sessionStorage)')).to.include(TEST_API_KEY);
    // Nothing left this server but for the LiveKit server, and no request broke the page's policy.
    const lk = new URL(api.env.LIVEKIT_URL!);
    const allowed = [new URL(api.url).origin, `ws://${lk.host}`, `http://${lk.host}`];
    expect([...seen.urls, ...seen.sockets].filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && !allowed.includes(new URL(u).origin))).to.deep.equal([]);
    expect(seen.console.filter((l) => /Content Security Policy|Refused to/.test(l)), 'policy violations').to.deep.equal([]);

    // End: the session is over, and the page says so.
    await page.locator('#end').click();
    await page.locator('#status[data-status="ended"]').waitFor({ timeout: 15_000 });
    const ended = (await api.call('GET', `/api/sessions/${sessionId}`)).body;
    expect(ended.status).to.equal('ended');
    // (Ended by the DELETE, or by the agent as its room closed: no failure reason to check.)
    expect(await page.locator('#end').isDisabled()).to.equal(true);
    expect(await page.locator('#start').isEnabled()).to.equal(true);
    expect(await page.locator('#connection').getAttribute('data-state')).to.equal('disconnected');
  });

  it('a wrong API key: the page says it was refused, keeps nothing and starts nothing', async () => {
    const before = (await api.call('GET', '/api/sessions?limit=200')).body.items.length;
    const page = await newPage();
    const seen = watch(page);
    await page.goto(`${api.url}/playground`);
    await useKey(page, 'not-the-right-key-000');
    await page.locator('#error').filter({ hasText: /refused \(401\)/ }).waitFor();
    expect(await page.locator('#start').isDisabled()).to.equal(true);
    expect(await page.evaluate('sessionStorage.length')).to.equal(0);
    expect((await api.call('GET', '/api/sessions?limit=200')).body.items.length, 'sessions').to.equal(before);
    expect(seen.sockets, 'LiveKit connections').to.deep.equal([]);
    expect(seen.urls.filter((u) => new URL(u).pathname === '/api/sessions')).to.deep.equal([]);
  });

  it('no microphone permission: the page says so and the session goes on, to be heard', async () => {
    // Headless Chromium without the fake prompt answers a page's request for the microphone with a refusal.
    const refusing = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream'] });
    try {
      const page = await (await refusing.newContext({ viewport: { width: 1200, height: 1000 } })).newPage();
      await page.goto(`${api.url}/playground`);
      await useKey(page, TEST_API_KEY);
      await page.locator('#agent option[value="play"]').waitFor({ state: 'attached' });
      await page.locator('#agent').selectOption('play');
      await page.locator('#start').click();
      await page.locator('#error').filter({ hasText: 'Microphone permission denied' }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#mic-toggle').getAttribute('data-on')).to.equal('false');
      await line(page, 'greeting', (l) => l.who === 'agent' && l.text.includes(GREETING), 60_000);
      await page.locator('#end').click();
      await page.locator('#status[data-status="ended"]').waitFor({ timeout: 15_000 });
    } finally {
      await refusing.close();
    }
  });

  it("provider not configured: a worker without the agent's provider key fails the session, and the page shows why", async () => {
    // Only this worker from now on, with the Deepgram key set empty (what a blanked .env line gives).
    await worker.kill();
    worker = await spawnWorker(api.env, { ...stack.providers, DEEPGRAM_API_KEY: '' });
    const page = await newPage();
    await page.goto(`${api.url}/playground`);
    await useKey(page, TEST_API_KEY);
    await page.locator('#agent option[value="play"]').waitFor({ state: 'attached' });
    await page.locator('#agent').selectOption('play');
    await page.locator('#start').click();
    await page.locator('#status[data-status="failed"]').waitFor({ timeout: 60_000 });
    expect(await page.locator('#error').innerText()).to.include('provider not configured').and.include('DEEPGRAM_API_KEY');
    expect(await page.locator('#start').isEnabled()).to.equal(true);
  });

  describe('with no agent worker for the API', () => {
    let lonely: TestApi;
    let dispatcher: RunningDispatcher;
    before(async () => {
      // The shared LiveKit, a dispatcher that waits 2 s for an agent, and no worker under this API's agent name.
      lonely = await startTestApi();
      dispatcher = await startTestDispatcher(lonely.env, { AGENT_JOIN_TIMEOUT: '2' });
      await lonely.call('POST', '/api/agents/register', agentBody('nobody'));
    });
    after(async () => {
      await dispatcher.stop();
      await lonely.stop();
    });

    it('says no agent joined within the join timeout once the session fails for it', async () => {
      const page = await newPage();
      await page.goto(`${lonely.url}/playground`);
      await useKey(page, TEST_API_KEY);
      await page.locator('#agent option[value="nobody"]').waitFor({ state: 'attached' });
      await page.locator('#mic-at-start').uncheck();
      await page.locator('#start').click();
      await page.locator('#status[data-status="failed"]').waitFor({ timeout: 45_000 });
      expect(await page.locator('#error').innerText()).to.include('No agent joined within the join timeout').and.include('agent_never_joined');
      expect(await page.locator('#agent-presence').getAttribute('data-present')).to.equal('false');
    });
  });

  describe('with LiveKit unreachable', () => {
    let dead: TestApi;
    before(async () => {
      // An API that hands out a LiveKit URL nothing listens on.
      dead = await startTestApi({ LIVEKIT_URL: `ws://127.0.0.1:${await freePort()}` });
      await dead.call('POST', '/api/agents/register', agentBody('far'));
    });
    after(() => dead.stop());

    it('says LiveKit is unreachable and ends the session it had started', async () => {
      const page = await newPage();
      await page.goto(`${dead.url}/playground`);
      await useKey(page, TEST_API_KEY);
      await page.locator('#agent option[value="far"]').waitFor({ state: 'attached' });
      await page.locator('#start').click();
      await page.locator('#error').filter({ hasText: 'LiveKit unreachable' }).waitFor({ timeout: 60_000 });
      expect(await page.locator('#error').innerText()).to.include(dead.env.LIVEKIT_URL!);
      const sessionId = (await page.locator('#session-id').innerText()).trim();
      const s = (await dead.call('GET', `/api/sessions/${sessionId}`)).body;
      expect(s.status).to.equal('cancelled');
    });
  });
});
