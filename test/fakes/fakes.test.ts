/**
 * The fake providers speak the real wire protocols: each is driven here by the
 * real client classes of @livekit/agents-plugin-openai / -deepgram (and, for
 * the avatar, @livekit/agents' own DataStreamAudioOutput over a real LiveKit
 * room), never by hand-written requests — except to check error answers.
 */
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { PhraseRecognizer, UNKNOWN_TRANSCRIPT } from '../support/fakes/recognizer.js';
import { initializeLogger, llm, stt, tts, voice } from '@livekit/agents';
import * as deepgram from '@livekit/agents-plugin-deepgram';
import * as openai from '@livekit/agents-plugin-openai';
import { AudioFrame, Room, TrackKind, VideoBufferType, VideoFrame } from '@livekit/rtc-node';
import { AccessToken } from 'livekit-server-sdk';
import { stack, uniqueName } from '../support/env.js';
import {
  concatPcm,
  hasEspeak,
  parseWav,
  pcmToFrames,
  rms,
  silencePcm,
  sineWavePcm,
  speechPcm,
  wavFromPcm,
} from '../support/fakes/audio.js';
import { startFakeBitHuman, type FakeBitHuman } from '../support/fakes/bithuman.js';
import { startFakeDeepgram, type FakeDeepgram } from '../support/fakes/deepgram.js';
import { imageUrlsOf, instructionsOf, lastUserText, startFakeOpenAI, type FakeOpenAI } from '../support/fakes/openai.js';

initializeLogger({ pretty: false, level: 'warn' });

/** Pulls items from an async iterator until `stop` says so; fails after `timeoutMs`. */
async function collectUntil<T>(it: AsyncIterator<T>, stop: (x: T) => boolean, timeoutMs: number): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out; collected ${out.length} items`);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (r === 'timeout') throw new Error(`timed out; collected ${out.length} items`);
    if (r.done) return out;
    out.push(r.value);
    if (stop(r.value)) return out;
  }
}

async function waitFor<T>(check: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function framesPcm(frames: AudioFrame[]): Int16Array {
  return concatPcm(...frames.map((f) => f.data));
}

describe('fake providers', function () {
  this.timeout(60_000);

  describe('audio helpers', () => {
    it('make sine waves, silence and WAV round trips', () => {
      const sine = sineWavePcm(1, 16000, 440, 0.5);
      expect(sine.length).to.equal(16000);
      expect(rms(sine)).to.be.closeTo(0.5 / Math.SQRT2, 0.01);
      expect(rms(silencePcm(0.5, 16000))).to.equal(0);
      const wav = parseWav(wavFromPcm(sine, 16000));
      expect(wav.sampleRate).to.equal(16000);
      expect(wav.pcm).to.deep.equal(sine);
    });

    it('synthesizes real speech with espeak-ng at the asked sample rate', function () {
      if (!hasEspeak()) throw new Error('espeak-ng is not installed: apt-get install -y espeak-ng sox');
      const pcm = speechPcm('hello there, how are you today', 16000);
      expect(pcm.length / 16000).to.be.within(1, 4);
      expect(rms(pcm)).to.be.greaterThan(0.03);
      const at24k = speechPcm('hello there, how are you today', 24000);
      expect(at24k.length / 24000).to.be.closeTo(pcm.length / 16000, 0.05);
    });
  });

  describe('OpenAI', () => {
    let fake: FakeOpenAI;
    beforeEach(async () => {
      fake = await startFakeOpenAI();
    });
    afterEach(async () => {
      await fake.close();
    });

    it('streams a chat completion to openai.LLM and records the full request', async () => {
      const reply = 'The quick brown fox jumps over the lazy dog.';
      fake.setReply(reply);
      const model = new openai.LLM({ model: 'gpt-4o-mini', baseURL: fake.url, apiKey: 'test' });
      const rgba = new Uint8Array(64 * 48 * 4).fill(200);
      const chatCtx = llm.ChatContext.empty();
      chatCtx.addMessage({ role: 'system', content: 'You are a terse test assistant.' });
      chatCtx.addMessage({
        role: 'user',
        content: ['What is in this picture?', llm.createImageContent({ image: new VideoFrame(rgba, 64, 48, VideoBufferType.RGBA) })],
      });

      let text = '';
      let contentChunks = 0;
      for await (const chunk of model.chat({ chatCtx })) {
        if (chunk.delta?.content) {
          text += chunk.delta.content;
          contentChunks++;
        }
      }
      expect(text).to.equal(reply);
      expect(contentChunks).to.be.greaterThan(3);

      expect(fake.requests.chat).to.have.length(1);
      const req = fake.requests.chat[0]!;
      expect(req.model).to.equal('gpt-4o-mini');
      expect(req.stream).to.equal(true);
      expect(req.stream_options).to.deep.equal({ include_usage: true });
      expect(instructionsOf(req)).to.equal('You are a terse test assistant.');
      expect(lastUserText(req)).to.equal('What is in this picture?');
      const images = imageUrlsOf(req);
      expect(images).to.have.length(1);
      expect(images[0]).to.match(/^data:image\/(png|jpeg);base64,[A-Za-z0-9+/=]{100,}$/);
      expect(fake.authHeaders[0]).to.equal('Bearer test');
    });

    it('answers the LLM prewarm (GET /models) and streams tool calls', async () => {
      const model = new openai.LLM({ model: 'gpt-4o-mini', baseURL: fake.url, apiKey: 'test' });
      model.prewarm();
      await waitFor(() => fake.requests.models === 1, 5000, 'the prewarm request');

      fake.setReply((req) => ({ toolCalls: [{ name: 'lookup_weather', arguments: { city: lastUserText(req) } }] }));
      const chatCtx = llm.ChatContext.empty();
      chatCtx.addMessage({ role: 'user', content: 'Paris' });
      const res = await model.chat({ chatCtx }).collect();
      expect(res.toolCalls).to.have.length(1);
      expect(res.toolCalls[0]!.name).to.equal('lookup_weather');
      expect(JSON.parse(res.toolCalls[0]!.args)).to.deep.equal({ city: 'Paris' });
    });

    it('synthesizes non-silent 24 kHz PCM for openai.TTS', async () => {
      const voiceTts = new openai.TTS({ baseURL: fake.url, apiKey: 'test' });
      const input = 'Hello there, world';
      const frames: AudioFrame[] = [];
      for await (const audio of voiceTts.synthesize(input)) frames.push(audio.frame);
      const pcm = framesPcm(frames);
      expect(frames[0]!.sampleRate).to.equal(24000);
      expect(frames[0]!.channels).to.equal(1);
      // The plugin cuts the body into 100 ms frames and drops the last partial one.
      expect(pcm.length / 24000).to.equal(Math.floor((input.length * 60) / 100) / 10);
      expect(rms(pcm)).to.be.greaterThan(0.1);
      expect(fake.requests.speech[0]).to.include({ input, response_format: 'pcm' });
    });

    it('transcribes a multipart upload for openai.STT (non-realtime)', async () => {
      fake.setTranscription('turn on the lights');
      const recognizer = new openai.STT({ baseURL: fake.url, apiKey: 'test', useRealtime: false, model: 'whisper-1' });
      const ev = await recognizer.recognize(pcmToFrames(sineWavePcm(1, 16000), 16000, 20));
      expect(ev.type).to.equal(stt.SpeechEventType.FINAL_TRANSCRIPT);
      expect(ev.alternatives?.[0]?.text).to.equal('turn on the lights');
      expect(fake.requests.transcriptions).to.equal(1);
      expect(fake.requests.transcriptionUploads[0]).to.deep.include({ filename: 'audio.wav' });
      expect(fake.requests.transcriptionUploads[0]!.fields).to.include({ model: 'whisper-1', response_format: 'json' });
      expect(fake.requests.transcriptionUploads[0]!.audioSeconds).to.be.closeTo(1, 0.01);
    });

    it('with a recognizer, openai.STT gets what the uploaded speech says, and "unknown" for noise', async function () {
      if (!hasEspeak()) throw new Error('espeak-ng is not installed: apt-get install -y espeak-ng sox');
      fake.setRecognizer(new PhraseRecognizer(['turn on the lights', 'what time is it']));
      try {
        const recognizer = new openai.STT({ baseURL: fake.url, apiKey: 'test', useRealtime: false, model: 'whisper-1' });
        const said = await recognizer.recognize(pcmToFrames(speechPcm('what time is it', 16000), 16000, 20));
        expect(said.alternatives?.[0]?.text).to.equal('what time is it');
        const speech = speechPcm('turn on the lights', 16000);
        const noise = Int16Array.from({ length: speech.length }, () => Math.round((Math.random() * 2 - 1) * rms(speech) * 32768 * Math.sqrt(3)));
        const heard = await recognizer.recognize(pcmToFrames(noise, 16000, 20));
        expect(heard.alternatives?.[0]?.text).to.equal(UNKNOWN_TRANSCRIPT);
      } finally {
        fake.setRecognizer(undefined);
      }
    });

    it('answers errors in OpenAI’s shape (unknown path, bad key, injected failure)', async () => {
      const notFound = await fetch(`${fake.url}/nope`);
      expect(notFound.status).to.equal(404);
      expect(((await notFound.json()) as { error: { type: string } }).error.type).to.equal('invalid_request_error');

      const locked = await startFakeOpenAI({ apiKey: 'right' });
      try {
        const bad = await fetch(`${locked.url}/models`, { headers: { authorization: 'Bearer wrong' } });
        expect(bad.status).to.equal(401);
        expect(((await bad.json()) as { error: { code: string } }).error.code).to.equal('invalid_api_key');
        const good = await fetch(`${locked.url}/models`, { headers: { authorization: 'Bearer right' } });
        expect(good.status).to.equal(200);
      } finally {
        await locked.close();
      }

      fake.failNext(503);
      expect((await fetch(`${fake.url}/models`)).status).to.equal(503);
      expect((await fetch(`${fake.url}/models`)).status).to.equal(200);
    });
  });

  describe('Deepgram', () => {
    let fake: FakeDeepgram;
    beforeEach(async () => {
      fake = await startFakeDeepgram({ apiKey: 'dg-key' });
    });
    afterEach(async () => {
      await fake.close();
    });

    async function transcribe(pcm: Int16Array, sampleRate = 16000): Promise<stt.SpeechEvent[]> {
      const recognizer = new deepgram.STT({ baseUrl: fake.url, apiKey: 'dg-key', sampleRate });
      const stream = recognizer.stream();
      for (const f of pcmToFrames(pcm, sampleRate, 10)) stream.pushFrame(f);
      const events = await collectUntil(stream, (e) => e.type === stt.SpeechEventType.END_OF_SPEECH, 15_000);
      stream.endInput();
      await waitFor(() => fake.listens[0]?.closed, 5000, 'the client to close the stream');
      stream.close();
      return events;
    }

    it('gives deepgram.STT interim and final transcripts for a tone', async () => {
      fake.setTranscript('what is the weather like');
      const events = await transcribe(concatPcm(silencePcm(0.3, 16000), sineWavePcm(1, 16000), silencePcm(1.2, 16000)));
      const types = events.map((e) => e.type);
      expect(types).to.include.members([
        stt.SpeechEventType.START_OF_SPEECH,
        stt.SpeechEventType.INTERIM_TRANSCRIPT,
        stt.SpeechEventType.FINAL_TRANSCRIPT,
        stt.SpeechEventType.END_OF_SPEECH,
      ]);
      expect(types.indexOf(stt.SpeechEventType.START_OF_SPEECH)).to.be.lessThan(types.indexOf(stt.SpeechEventType.FINAL_TRANSCRIPT));
      const final = events.find((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!;
      expect(final.alternatives?.[0]?.text).to.equal('what is the weather like');
      expect(final.alternatives?.[0]?.words?.map((w) => String(w))).to.have.length(5);
      const interim = events.find((e) => e.type === stt.SpeechEventType.INTERIM_TRANSCRIPT)!;
      expect(interim.alternatives?.[0]?.text).to.equal('what is the');

      expect(fake.connections).to.equal(1);
      expect(fake.authHeaders).to.deep.equal(['Token dg-key']);
      expect(fake.audioBytes).to.be.greaterThan(32000);
      const q = fake.listens[0]!.query;
      expect(q.get('encoding')).to.equal('linear16');
      expect(q.get('sample_rate')).to.equal('16000');
      expect(q.get('interim_results')).to.equal('true');
      expect(q.get('vad_events')).to.equal('true');
      expect(fake.listens[0]!.clientMessages.map((m) => m.type)).to.include('CloseStream');
    });

    it('transcribes real espeak-ng speech, one final per utterance', async function () {
      if (!hasEspeak()) throw new Error('espeak-ng is not installed: apt-get install -y espeak-ng sox');
      fake.setTranscript((i) => ['hello there how are you today', 'goodbye'][i] ?? 'extra');
      const speech = speechPcm('hello there, how are you today', 16000);
      const bye = speechPcm('goodbye now', 16000);
      const recognizer = new deepgram.STT({ baseUrl: fake.url, apiKey: 'dg-key' });
      const stream = recognizer.stream();
      for (const f of pcmToFrames(concatPcm(silencePcm(0.2, 16000), speech, silencePcm(0.8, 16000), bye, silencePcm(1.2, 16000)), 16000)) {
        stream.pushFrame(f);
      }
      const isSecondEnd = (() => {
        let ends = 0;
        return (e: stt.SpeechEvent) => e.type === stt.SpeechEventType.END_OF_SPEECH && ++ends === 2;
      })();
      const events = await collectUntil(stream, isSecondEnd, 15_000);
      const finals = events.filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT).map((e) => e.alternatives?.[0]?.text);
      expect(finals).to.deep.equal(['hello there how are you today', 'goodbye']);
      stream.close();
    });

    it('with a recognizer, transcribes what the audio says: each phrase as itself, noise just as loud and an unknown phrase as "unknown"', async function () {
      if (!hasEspeak()) throw new Error('espeak-ng is not installed: apt-get install -y espeak-ng sox');
      const phrases = ['book a table for two tonight', 'tell me a short story'];
      const rec = new PhraseRecognizer(phrases);
      fake.setRecognizer(rec);
      const speech = phrases.map((p) => speechPcm(p, 16000));
      // White noise as loud as the speech: loud enough for any RMS gate, but not speech.
      const noise = Int16Array.from({ length: speech[0]!.length }, () => Math.round((Math.random() * 2 - 1) * rms(speech[0]!) * 32768 * Math.sqrt(3)));
      expect(rms(noise)).to.be.closeTo(rms(speech[0]!), 0.02);
      const gap = silencePcm(0.8, 16000);
      const audio = concatPcm(silencePcm(0.2, 16000), speech[1]!, gap, noise, gap, speechPcm('please call my mother now', 16000), gap, speech[0]!, silencePcm(1.2, 16000));
      const recognizer = new deepgram.STT({ baseUrl: fake.url, apiKey: 'dg-key' });
      const stream = recognizer.stream();
      for (const f of pcmToFrames(audio, 16000)) stream.pushFrame(f);
      let ends = 0;
      const events = await collectUntil(stream, (e) => e.type === stt.SpeechEventType.END_OF_SPEECH && ++ends === 4, 20_000);
      const finals = events.filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT).map((e) => e.alternatives?.[0]?.text);
      expect(finals).to.deep.equal([phrases[1], UNKNOWN_TRANSCRIPT, UNKNOWN_TRANSCRIPT, phrases[0]]);
      stream.close();
    });

    it('ignores silence (RMS gate): no transcript, no speech events', async () => {
      const recognizer = new deepgram.STT({ baseUrl: fake.url, apiKey: 'dg-key' });
      const stream = recognizer.stream();
      for (const f of pcmToFrames(silencePcm(1.5, 16000), 16000)) stream.pushFrame(f);
      await waitFor(() => fake.audioBytes > 0, 5000, 'audio to reach the fake');
      await sleep(1200);
      expect(fake.finalTranscripts).to.deep.equal([]);
      expect(fake.listens[0]!.serverMessages).to.deep.equal([]);
      stream.close();
    });

    it('rejects a wrong key with HTTP 401 on the websocket upgrade', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${fake.httpUrl}/v1/listen?encoding=linear16&sample_rate=16000`, {
          headers: {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': Buffer.from('0123456789abcdef').toString('base64'),
            Authorization: 'Token wrong',
          },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('upgrade', () => reject(new Error('upgraded with a wrong key')));
        req.on('error', reject);
        req.end();
      });
      expect(status).to.equal(401);
      expect(fake.connections).to.equal(0);
    });

    it('answers deepgram.STT recognize (prerecorded POST /v1/listen)', async () => {
      fake.setTranscript('prerecorded words');
      const recognizer = new deepgram.STT({ baseUrl: fake.url, apiKey: 'dg-key' });
      const ev = await recognizer.recognize(pcmToFrames(concatPcm(sineWavePcm(1, 16000), silencePcm(0.2, 16000)), 16000));
      expect(ev.type).to.equal(stt.SpeechEventType.FINAL_TRANSCRIPT);
      expect(ev.alternatives?.[0]?.text).to.equal('prerecorded words');
    });

    it('streams speech to deepgram.TTS over the /v1/speak websocket', async () => {
      const speaker = new deepgram.TTS({ baseUrl: fake.url, apiKey: 'dg-key' });
      const stream = speaker.stream();
      stream.pushText('Hello there, this is the streaming test. ');
      stream.pushText('It has two sentences.');
      stream.endInput();
      const items = await collectUntil(stream, (x) => x === tts.SynthesizeStream.END_OF_STREAM, 10_000);
      const frames = items.filter((x): x is tts.SynthesizedAudio => x !== tts.SynthesizeStream.END_OF_STREAM).map((a) => a.frame);
      const pcm = framesPcm(frames);
      expect(frames[0]!.sampleRate).to.equal(24000);
      expect(pcm.length / 24000).to.be.greaterThan(1);
      expect(rms(pcm)).to.be.greaterThan(0.1);
      const speak = fake.speaks[0]!;
      expect(speak.texts.join('')).to.contain('Hello there, this is the streaming test.');
      expect(speak.query.get('sample_rate')).to.equal('24000');
      expect(speak.clientMessages.map((m) => m.type)).to.include('Flush');
      stream.close();
    });
  });

  describe('BitHuman', () => {
    let fake: FakeBitHuman;
    afterEach(async () => {
      await fake.close();
    });

    const post = (url: string, body: unknown, headers: Record<string, string>) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

    it('answers 401 to a wrong secret, 200 and records the body to the right one', async () => {
      fake = await startFakeBitHuman({ secret: 's3cret', join: false });
      const body = {
        livekit_url: 'ws://127.0.0.1:7880',
        livekit_token: 'dummy-token',
        room_name: 'room-1',
        mode: 'cpu',
        agent_id: 'A12345',
      };
      const bad = await post(fake.url, body, { 'api-secret': 'nope' });
      expect(bad.status).to.equal(401);
      expect(await bad.json()).to.have.property('detail');

      const good = await post(fake.url, body, { 'api-secret': 's3cret' });
      expect(good.status).to.equal(200);
      expect(await good.json()).to.deep.equal({ avatar_session_started: true });
      expect(fake.requests).to.have.length(2);
      expect(fake.requests[1]!.body).to.deep.equal(body);
      expect(fake.requests[1]!.headers['api-secret']).to.equal('s3cret');
      expect(fake.requests.map((r) => r.status)).to.deep.equal([401, 200]);

      fake.failNext(503);
      expect((await post(fake.url, body, { 'api-secret': 's3cret' })).status).to.equal(503);
      expect((await post(fake.url, body, { 'api-secret': 's3cret' })).status).to.equal(200);
      expect((await post(fake.url, { room_name: 'x' }, { 'api-secret': 's3cret' })).status).to.equal(422);
      expect((await fetch(fake.url.replace('/request', '/other'), { method: 'POST' })).status).to.equal(404);
    });

    it('records a failed join (bad token) without throwing', async () => {
      fake = await startFakeBitHuman({ secret: 's3cret' });
      const res = await post(
        fake.url,
        { livekit_url: stack.LIVEKIT_URL, livekit_token: 'not-a-jwt', room_name: 'r', mode: 'cpu', agent_id: 'A1' },
        { 'api-secret': 's3cret' },
      );
      expect(res.status).to.equal(200);
      let err: unknown;
      await fake.waitForJoin(20_000).catch((e: unknown) => (err = e));
      expect(String(err)).to.match(/could not join/);
      expect(fake.joined).to.equal(false);
    });

    it('joins a real LiveKit room, publishes video and plays the agent’s DataStream audio', async () => {
      fake = await startFakeBitHuman({ secret: 's3cret' });
      const roomName = uniqueName('avatar');
      const agentIdentity = 'agent-under-test';
      const avatarIdentity = 'bithuman-avatar-agent';

      const agentAt = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, { identity: agentIdentity, ttl: 600 });
      agentAt.kind = 'agent';
      agentAt.addGrant({ room: roomName, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
      const agentRoom = new Room();
      await agentRoom.connect(stack.LIVEKIT_URL, await agentAt.toJwt(), { autoSubscribe: true, dynacast: false });
      try {
        const avatarAt = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, {
          identity: avatarIdentity,
          name: avatarIdentity,
          ttl: 600,
          attributes: { 'lk.publish_on_behalf': agentIdentity },
        });
        avatarAt.kind = 'agent';
        avatarAt.addGrant({ room: roomName, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
        const res = await post(
          fake.url,
          { livekit_url: stack.LIVEKIT_URL, livekit_token: await avatarAt.toJwt(), room_name: roomName, mode: 'cpu', agent_id: 'A1' },
          { 'api-secret': 's3cret' },
        );
        expect(res.status).to.equal(200);

        const session = await fake.waitForJoin(20_000);
        expect(session.identity).to.equal(avatarIdentity);
        expect(session.publishOnBehalf).to.equal(agentIdentity);
        const avatar = await waitFor(
          () => {
            const p = agentRoom.remoteParticipants.get(avatarIdentity);
            return p && [...p.trackPublications.values()].some((t) => t.kind === TrackKind.KIND_VIDEO) ? p : undefined;
          },
          10_000,
          'the avatar video track in the agent’s room',
        );
        expect(avatar.attributes['lk.publish_on_behalf']).to.equal(agentIdentity);

        // The agent's side of the protocol, as an AgentSession with an avatar uses it.
        const out = new voice.DataStreamAudioOutput({
          room: agentRoom,
          destinationIdentity: avatarIdentity,
          sampleRate: 24000,
          waitRemoteTrack: TrackKind.KIND_VIDEO,
        });
        for (const f of pcmToFrames(sineWavePcm(1, 24000), 24000, 20)) await out.captureFrame(f);
        out.flush();
        const t0 = Date.now();
        const done = await out.waitForPlayout();
        expect(done.interrupted).to.equal(false);
        expect(done.playbackPosition).to.be.closeTo(1, 0.05);
        // Played out in real time: finished about a second after the (instant) capture.
        expect(Date.now() - t0).to.be.within(700, 5000);
        expect(fake.audioBytesReceived).to.equal(24000 * 2);
        expect(session.streams).to.equal(1);
        expect(session.streamSenders).to.deep.equal([agentIdentity]);

        // An interruption: clear_buffer → playback_finished(interrupted) with the position reached.
        // (16 kHz this time: the avatar resamples to its 24 kHz track.)
        for (const f of pcmToFrames(sineWavePcm(3, 16000), 16000, 20)) await out.captureFrame(f);
        await waitFor(() => session.streams === 2 && session.audioBytesReceived > 48000, 5000, 'the second segment');
        await sleep(500);
        out.clearBuffer();
        const cut = await out.waitForPlayout();
        expect(cut.interrupted).to.equal(true);
        expect(cut.playbackPosition).to.be.within(0, 2.5);
        out.flush();
        await waitFor(() => session.streamsCompleted === 2, 5000, 'the interrupted stream to end');
        expect(session.clearBufferCalls).to.equal(1);
        expect(session.playbackFinished.map((p) => p.interrupted)).to.deep.equal([false, true]);
        expect(session.streamErrors).to.deep.equal([]);
      } finally {
        await agentRoom.disconnect();
      }
      await waitFor(() => fake.sessions[0]!.left, 10_000, 'the avatar to leave after the agent');
    });
  });
});
