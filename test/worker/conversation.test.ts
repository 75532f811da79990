import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentBody, type TestApi } from '../support/api.js';
import { concatPcm, rms, silencePcm, speechPcm } from '../support/fakes/audio.js';
import { instructionsOf, lastUserText, type ChatRequest, type FakeOpenAI } from '../support/fakes/openai.js';
import { PhraseRecognizer, UNKNOWN_TRANSCRIPT } from '../support/fakes/recognizer.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { sample } from '../support/prometheus-text.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

const RATE = 48000;
const ASK_TABLE = 'book a table for two tonight';
const ASK_STORY = 'tell me a short story';
const INTERRUPT = 'stop please';
const ANSWERS: Record<string, string> = {
  [ASK_TABLE]: 'Your table for two is booked.',
  [ASK_STORY]: 'Once there was a test that listened.',
  [UNKNOWN_TRANSCRIPT]: 'Sorry, I did not catch that.',
};
/** A reply of many sentences: each is its own TTS request of up to 3 s here, so it speaks for well over ten seconds. */
const LONG_REPLY = Array.from({ length: 6 }, (_, i) => `This is sentence number ${i + 1} of a long answer that keeps going on.`).join(' ');
/** Audible agent audio that counts as hearing an answer (the floor: 300 ms). */
const HEARD_MS = 300;

describe('a conversation on real WebRTC: the agent answers what was said, audibly, and stops when interrupted', function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let openai: FakeOpenAI;
  let worker: WorkerProcess;
  let recognizer: PhraseRecognizer;
  const users: TestUser[] = [];

  /** The user's phrase, then the silence that ends the turn. */
  const say = (user: TestUser, text: string) => user.speak(concatPcm(speechPcm(text, RATE), silencePcm(1.2, RATE)), RATE);
  async function session(agentId: string) {
    const s = (await api.call('POST', '/api/sessions', { agentId })).body as { sessionId: string; participantToken: string };
    const user = await TestUser.join(livekit.url, s.participantToken, { microphone: true });
    users.push(user);
    return user;
  }
  const chatsWith = (text: string) => openai.requests.chat.filter((r) => lastUserText(r) === text);

  before(async function () {
    this.timeout(150_000);
    stack = await startWorkerStack();
    ({ livekit, api, openai } = stack);
    // The transcript is what the user's audio says: a wrong or broken audio path cannot produce the right answer.
    recognizer = new PhraseRecognizer([ASK_TABLE, ASK_STORY, INTERRUPT]);
    stack.deepgram.setRecognizer(recognizer);
    openai.setReply((req: ChatRequest) => {
      const heard = lastUserText(req);
      if (heard === INTERRUPT || heard === '') return 'Alright.';
      return instructionsOf(req).includes('long talker') ? LONG_REPLY : (ANSWERS[heard] ?? ANSWERS[UNKNOWN_TRANSCRIPT]!);
    });
    await api.call('POST', '/api/agents/register', agentBody('talk', { greeting: 'Talk desk here.' }));
    for (const [id, allowInterruptions] of [['yields', true], ['holds', false]] as const) {
      await api.call('POST', '/api/agents/register', agentBody(id, { greeting: 'Ready.', instructions: 'You are the long talker.', allowInterruptions }));
    }
    // Waits three seconds of silence before the user's turn is over, where the default waits half a second.
    await api.call('POST', '/api/agents/register', agentBody('patient', { greeting: 'Take your time.', endpointing: { minDelayMs: 3000 } }));
    worker = await spawnWorker(api.env, stack.providers);
  });
  afterEach(async () => {
    await Promise.all(users.splice(0).map((u) => u.leave()));
  });
  after(async function () {
    this.timeout(60_000);
    await worker?.kill();
    await stack?.stop();
  });

  it('two turns: the greeting is heard, then each phrase gets its own answer, as text and as audio after the phrase', async () => {
    const user = await session('talk');
    const joined = Date.now();
    await until(async () => user.said('Talk desk here.') && user.audibleMs(joined) >= HEARD_MS, 60_000, 50);
    // Let the greeting finish before speaking (no barge-in in this test).
    await user.agentQuiet(joined);

    for (const phrase of [ASK_TABLE, ASK_STORY]) {
      const spokenAt = Date.now();
      await say(user, phrase);
      await until(async () => user.said(ANSWERS[phrase]!), 45_000, 50);
      // The LLM was asked exactly what the user said, recognized from the audio that crossed WebRTC.
      expect(chatsWith(phrase), `LLM requests for "${phrase}"; recognizer: ${JSON.stringify(recognizer.decisions)}`).to.have.length(1);
      await until(async () => user.audibleMs(spokenAt) >= HEARD_MS, 15_000, 50);
      await user.agentQuiet(spokenAt);
    }
    // Neither answer came from a guess: nothing was heard as unknown.
    expect(openai.requests.chat.filter((r) => lastUserText(r) === UNKNOWN_TRANSCRIPT)).to.have.length(0);

    // Each answer's voice-to-voice latency is in the worker's metrics, with its parts.
    const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    const turns = sample(text, 'agent_runtime_turn_latency_seconds_count')!;
    expect(turns, 'turns measured').to.be.at.least(2);
    const mean = sample(text, 'agent_runtime_turn_latency_seconds_sum')! / turns;
    expect(mean, 'mean voice-to-voice seconds').to.be.above(0).and.below(10);
    for (const part of ['end_of_turn', 'llm_ttft', 'tts_ttfb']) {
      expect(sample(text, 'agent_runtime_turn_part_seconds_count', { part }), part).to.be.at.least(2);
      // A part is a part: on average no longer than the whole.
      expect(sample(text, 'agent_runtime_turn_part_seconds_sum', { part })! / sample(text, 'agent_runtime_turn_part_seconds_count', { part })!, part).to.be.at.most(mean);
    }
  });

  it("endpointing.minDelayMs: the agent answers only once the user has been silent that long (3 s here; the default is 0.5 s)", async () => {
    const user = await session('patient');
    const joined = Date.now();
    await until(async () => user.said('Take your time.') && user.audibleMs(joined) >= HEARD_MS, 60_000, 50);
    await user.agentQuiet(joined);

    const spokenAt = Date.now();
    await say(user, ASK_TABLE);
    // say() returns once the phrase and its 1.2 s of silence have played out: the speech ended before that.
    const speechEnded = Date.now() - 1200;
    // With the default the answer would be playing by now (about 0.8 s after the speech here).
    await sleep(Math.max(0, speechEnded + 2000 - Date.now()));
    expect(user.firstAudibleAt(spokenAt), 'agent audio before the turn could be over').to.equal(undefined);
    await until(async () => user.said(ANSWERS[ASK_TABLE]!) && user.audibleMs(spokenAt) >= HEARD_MS, 45_000, 50);
    expect(user.firstAudibleAt(spokenAt)! - speechEnded, 'ms from the end of speech to the answer').to.be.at.least(2500);
  });

  /** Ms from the start of `pcm` to its first audible 10 ms (espeak leads with a little silence). */
  function onsetMs(pcm: Int16Array, rate: number): number {
    const n = rate / 100;
    for (let i = 0; i + n <= pcm.length; i += n) if (rms(pcm.subarray(i, i + n)) > 0.01) return (i / rate) * 1000;
    return 0;
  }

  /**
   * The user asks for a story, and once the agent has talked for a second, says "stop please":
   * when the agent's audio last sounded before a silence of a second, measured from the user's speech onset.
   */
  async function interrupt(agentId: string) {
    const user = await session(agentId);
    const joined = Date.now();
    await until(async () => user.said('Ready.') && user.audibleMs(joined) >= HEARD_MS, 60_000, 50);
    await user.agentQuiet(joined);
    const askedAt = Date.now();
    await say(user, ASK_STORY);
    // Talking for a second, and talking right now: the user talks over it.
    await until(async () => user.audibleMs(askedAt) >= 1000 && user.audibleMs(Date.now() - 300) >= 200, 45_000, 20);
    const pcm = concatPcm(speechPcm(INTERRUPT, RATE), silencePcm(1.2, RATE));
    const onset = Date.now() + onsetMs(pcm, RATE);
    await user.speak(pcm, RATE);
    await sleep(3000);
    // Where the reply's audio stopped after the user began: the last audible frame before the first half second of quiet.
    let stoppedAt: number | undefined;
    for (let t = onset; t < Date.now() - 500; t += 10) {
      if (user.audibleMs(t, t + 500) === 0) {
        stoppedAt = user.lastAudibleAt(onset - 5000, t) ?? onset;
        break;
      }
    }
    return { user, onset, stoppedAt };
  }

  it('barge-in with allowInterruptions: the agent falls silent once the user has talked over it for the minimum interruption time (0.5 s)', async () => {
    const { stoppedAt, onset, user } = await interrupt('yields');
    expect(stoppedAt, 'the agent stopped talking').to.be.a('number');
    // 0.5 s of speech makes an interruption; the bound leaves the rest for VAD and WebRTC on a loaded test machine.
    expect(stoppedAt! - onset, 'user speech onset → agent audio silent (ms)').to.be.below(1500);
    // And it did not just pause: the long reply (15 s of sentences) did not go on; what follows is at most the short
    // answer to "stop please" (about half a second).
    expect(user.audibleMs(onset + 1500), 'agent audio from 1.5 s after the onset (ms)').to.be.below(1000);
  });

  it('without allowInterruptions: the agent keeps talking over the user', async () => {
    const { onset, user } = await interrupt('holds');
    expect(user.audibleMs(onset + 1500, onset + 4000), 'agent audio while and after the user spoke (ms)').to.be.above(1500);
  });
});
