import { expect } from 'chai';
import { initializeLogger } from '@livekit/agents';
import * as deepgram from '@livekit/agents-plugin-deepgram';
import * as openai from '@livekit/agents-plugin-openai';
import { loadConfig, workerEnv } from '../../common/config.js';
import { type AgentConfig, agentConfigInput } from '../../common/agents/index.js';
import { AGENT_ATTRIBUTE, dispatchMetadata, parseDispatchMetadata, SESSION_ATTRIBUTE, SOURCE_ATTRIBUTE } from '../../common/sessions/index.js';
import { jobTarget } from '../../worker/job-target.js';
import { instructionsFor, pipelineFor } from '../../worker/pipeline.js';
import { agentBody } from '../support/api.js';

const config = (extra: Record<string, unknown> = {}): AgentConfig => ({
  ...agentConfigInput.parse(agentBody('9', extra)),
  version: 1,
  createdAt: '',
  updatedAt: '',
});

describe('worker: which agent a job is for, and its pipeline', () => {
  before(() => initializeLogger({ pretty: false, level: 'warn' }));

  it('takes the agent id from the dispatch metadata, else from the room name', () => {
    expect(jobTarget(JSON.stringify({ agentId: '12', sessionId: 'ses_x', configVersion: 3, generation: 2 }), 'anything')).to.deep.equal({ agentId: '12', sessionId: 'ses_x', configVersion: 3, generation: 2 });
    expect(jobTarget('', 'agent-123-room')).to.deep.equal({ agentId: '123', generation: 0 });
    expect(jobTarget('not json', 'agent-7-room-abcdefghij012345')).to.deep.equal({ agentId: '7', generation: 0 });
    expect(jobTarget(JSON.stringify({ agentId: 5, generation: -1 }), undefined)).to.deep.equal({ agentId: '5', generation: 0 });
    expect(jobTarget('[1,2]', 'lobby')).to.deep.equal({ generation: 0 });
    // A field of the wrong type is left out; the others still count.
    expect(jobTarget(JSON.stringify({ agentId: '4', sessionId: 9, configVersion: 'x', generation: '2', requestedAt: 'soon' }), undefined)).to.deep.equal({ agentId: '4', generation: 0 });
  });

  it('takes an automatic job\'s session and agent from the attributes its worker accepted it with, and only those of an automatic job', () => {
    const attributes = { [SESSION_ATTRIBUTE]: 'ses_auto', [AGENT_ATTRIBUTE]: '3', [SOURCE_ATTRIBUTE]: 'automatic' };
    expect(jobTarget('', 'agent-3-room', attributes)).to.deep.equal({ agentId: '3', sessionId: 'ses_auto', generation: 0, automatic: true });
    // An explicit job's attributes name its session too, but its metadata is what counts.
    expect(jobTarget(JSON.stringify({ agentId: '8', sessionId: 'ses_y' }), 'r', { [SESSION_ATTRIBUTE]: 'ses_y', [AGENT_ATTRIBUTE]: '8' })).to.deep.equal({ agentId: '8', sessionId: 'ses_y', generation: 0 });
  });

  it('reads back the dispatch metadata it builds, with the caller metadata beside ours and never over it', () => {
    const requestedAt = new Date().toISOString();
    const built = dispatchMetadata({ agentId: '3', sessionId: 'ses_y', requestedAt, metadata: { lang: 'de', agentId: 'other', sessionId: 'forged' } }, 2, 1);
    expect(parseDispatchMetadata(built)).to.deep.equal({ lang: 'de', agentId: '3', sessionId: 'ses_y', configVersion: 2, requestedAt, generation: 1 });
    expect(jobTarget(built, 'agent-9-room')).to.deep.equal({ agentId: '3', sessionId: 'ses_y', configVersion: 2, generation: 1, requestedAt: Date.parse(requestedAt) });
  });

  it('asks for the target language when the agent translates', () => {
    expect(instructionsFor(config())).to.equal('You are a helpful voice assistant.');
    const t = instructionsFor(config({ translation: { targetLanguage: 'German', sourceLanguage: 'French' } }));
    expect(t).to.match(/Always answer in German/);
    expect(t).to.match(/The user speaks French/);
  });

  it('builds the providers the config names, against the configured endpoints', () => {
    const env = loadConfig(workerEnv, { OPENAI_API_KEY: 'k', DEEPGRAM_API_KEY: 'd', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', DEEPGRAM_BASE_URL: 'http://127.0.0.1:2' });
    const a = pipelineFor(config(), env);
    expect(a.stt).to.be.instanceOf(deepgram.STT);
    expect(a.llm).to.be.instanceOf(openai.LLM);
    expect(a.tts).to.be.instanceOf(openai.TTS);
    expect(a.turnHandling).to.deep.equal({ turnDetection: 'vad', interruption: { enabled: true, mode: 'vad' } });
    const b = pipelineFor(config({ stt: { provider: 'openai' }, tts: { provider: 'deepgram' }, allowInterruptions: false, turnDetection: 'stt' }), env);
    expect(b.stt).to.be.instanceOf(openai.STT);
    expect(b.tts).to.be.instanceOf(deepgram.TTS);
    expect(b.turnHandling).to.deep.equal({ turnDetection: 'stt', interruption: { enabled: false, mode: 'vad' } });
  });

  it('refuses to build a pipeline whose provider has no key, set empty or unset (the plugins would take an empty key)', () => {
    const urls = { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', DEEPGRAM_BASE_URL: 'http://127.0.0.1:2' };
    const saved = process.env.DEEPGRAM_API_KEY;
    // The Deepgram plugin's own default reads the variable: set empty here, as a user who blanks it would.
    process.env.DEEPGRAM_API_KEY = '';
    try {
      expect(() => pipelineFor(config(), loadConfig(workerEnv, { ...urls, OPENAI_API_KEY: 'k', DEEPGRAM_API_KEY: '' }))).to.throw(/no key for deepgram/);
      expect(() => pipelineFor(config(), loadConfig(workerEnv, { ...urls, DEEPGRAM_API_KEY: 'd' }))).to.throw(/no key for openai/);
      // An agent that needs only OpenAI starts without a Deepgram key.
      expect(pipelineFor(config({ stt: { provider: 'openai' } }), loadConfig(workerEnv, { ...urls, OPENAI_API_KEY: 'k' })).stt).to.be.instanceOf(openai.STT);
    } finally {
      if (saved === undefined) delete process.env.DEEPGRAM_API_KEY;
      else process.env.DEEPGRAM_API_KEY = saved;
    }
  });

  it('defaults to the real provider endpoints', () => {
    const env = loadConfig(workerEnv, {});
    expect(env.OPENAI_BASE_URL).to.equal('https://api.openai.com/v1');
    expect(env.DEEPGRAM_BASE_URL).to.equal('https://api.deepgram.com');
    expect(env.BITHUMAN_API_URL).to.equal('https://auth.api.bithuman.ai/v1/runtime-tokens/request');
  });
});
