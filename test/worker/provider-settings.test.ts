import { expect } from 'chai';
import { agentBody, type TestApi } from '../support/api.js';
import { concatPcm, silencePcm, speechPcm } from '../support/fakes/audio.js';
import type { FakeDeepgram } from '../support/fakes/deepgram.js';
import { lastUserText, type FakeOpenAI } from '../support/fakes/openai.js';
import { PhraseRecognizer } from '../support/fakes/recognizer.js';
import type { OwnLivekit } from '../support/livekit-server.js';
import { until } from '../support/sessions.js';
import { TestUser } from '../support/user.js';
import { spawnWorker, type WorkerProcess } from '../support/worker.js';
import { startWorkerStack, type WorkerStack } from '../support/worker-stack.js';

const RATE = 48000;
const PHRASE = 'what is the weather like today';

describe("an agent's provider settings reach the providers' wire", function () {
  this.timeout(240_000);
  let stack: WorkerStack;
  let livekit: OwnLivekit;
  let api: TestApi;
  let openai: FakeOpenAI;
  let deepgram: FakeDeepgram;
  let worker: WorkerProcess;
  const users: TestUser[] = [];

  /** A session of `agentId` in which the user says PHRASE once the greeting is over; resolves when the answer was heard. */
  async function converse(agentId: string, greeting: string) {
    const s = (await api.call('POST', '/api/sessions', { agentId })).body as { participantToken: string };
    const user = await TestUser.join(livekit.url, s.participantToken, { microphone: true });
    users.push(user);
    await until(async () => user.said(greeting), 60_000, 50);
    const chats = openai.requests.chat.length;
    await user.speak(concatPcm(speechPcm(PHRASE, RATE), silencePcm(1.2, RATE)), RATE);
    return until(async () => openai.requests.chat.slice(chats).find((r) => lastUserText(r) === PHRASE), 45_000, 50);
  }

  before(async function () {
    this.timeout(150_000);
    stack = await startWorkerStack();
    ({ livekit, api, openai, deepgram } = stack);
    // Both STT paths transcribe from the audio: a request that arrives means the user's speech got there.
    const recognizer = new PhraseRecognizer([PHRASE]);
    deepgram.setRecognizer(recognizer);
    openai.setRecognizer(recognizer);
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

  it('Deepgram STT (model, language), OpenAI LLM (model, temperature) and OpenAI TTS (model, voice, speed)', async () => {
    await api.call(
      'POST',
      '/api/agents/register',
      agentBody('wire1', {
        greeting: 'Wire one.',
        stt: { provider: 'deepgram', model: 'nova-2-phonecall', language: 'en-GB' },
        llm: { provider: 'openai', model: 'gpt-4.1-mini', temperature: 0.3 },
        tts: { provider: 'openai', model: 'tts-1-hd', voice: 'nova', speed: 1.25 },
      }),
    );
    const listens = deepgram.listens.length;
    const speeches = openai.requests.speech.length;
    const chat = await converse('wire1', 'Wire one.');
    const listen = deepgram.listens.slice(listens).find((l) => l.audioBytes > 0)!;
    expect(listen.query.get('model')).to.equal('nova-2-phonecall');
    expect(listen.query.get('language')).to.equal('en-GB');
    expect(chat).to.include({ model: 'gpt-4.1-mini', temperature: 0.3 });
    const speech = openai.requests.speech.slice(speeches);
    expect(speech.length).to.be.at.least(2);
    for (const s of speech) expect(s).to.include({ model: 'tts-1-hd', voice: 'nova', speed: 1.25 });
  });

  it('OpenAI STT over HTTP, segmented by VAD (model, language), and Deepgram TTS (model)', async () => {
    await api.call(
      'POST',
      '/api/agents/register',
      agentBody('wire2', {
        greeting: 'Wire two.',
        stt: { provider: 'openai', model: 'gpt-4o-mini-transcribe', language: 'en' },
        llm: { provider: 'openai', model: 'gpt-4o-mini', temperature: 1.1 },
        tts: { provider: 'deepgram', model: 'aura-2-thalia-en' },
      }),
    );
    const uploads = openai.requests.transcriptionUploads.length;
    const speaks = deepgram.speaks.length;
    const chat = await converse('wire2', 'Wire two.');
    const upload = openai.requests.transcriptionUploads.slice(uploads);
    // One upload per VAD segment: the user's phrase, as a WAV of about its length (not the whole stream).
    expect(upload.length).to.be.at.least(1);
    expect(upload[0]!.fields).to.include({ model: 'gpt-4o-mini-transcribe', language: 'en' });
    expect(upload[0]!.audioSeconds).to.be.within(1, 5);
    expect(chat).to.include({ model: 'gpt-4o-mini', temperature: 1.1 });
    const speak = deepgram.speaks.slice(speaks);
    expect(speak.length).to.be.at.least(1);
    for (const s of speak) expect(s.query.get('model')).to.equal('aura-2-thalia-en');
  });
});
