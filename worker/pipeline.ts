import type { voice } from '@livekit/agents';
import * as deepgram from '@livekit/agents-plugin-deepgram';
import * as openai from '@livekit/agents-plugin-openai';
import type { WorkerConfig } from '../common/config.js';
import type { AgentConfig } from '../common/agents/index.js';
import { configuredProviders, providersNeeded } from '../common/workers/providers.js';

type SessionOptions = NonNullable<ConstructorParameters<typeof voice.AgentSession>[0]>;

const toWs = (u: string) => u.replace(/^http/, 'ws');
const toHttp = (u: string) => u.replace(/^ws/, 'http');

/** The agent's system prompt, with the language it must answer in when it translates. */
export function instructionsFor(config: AgentConfig): string {
  const t = config.translation;
  if (!t) return config.instructions;
  const from = t.sourceLanguage ? ` The user speaks ${t.sourceLanguage}.` : '';
  return `${config.instructions}\n\nYou are translating.${from} Always answer in ${t.targetLanguage}, whatever language the user speaks.`;
}

/**
 * The STT → LLM → TTS pipeline an agent config describes. Keys and endpoints
 * come from the worker's environment; the real providers' endpoints are the
 * defaults. VAD is the bundled local Silero model (no cloud service), and turn
 * detection defaults to it too.
 */
export function pipelineFor(config: AgentConfig, env: WorkerConfig): SessionOptions {
  // Checked here, not left to the plugins: they refuse only an undefined key and take '' (an unset
  // variable, or one set empty) as a key, so the session would start and fail at its first request.
  const have = configuredProviders(env);
  const missing = providersNeeded(config).filter((p) => !have.includes(p));
  if (missing.length) throw new Error(`no key for ${missing.join(', ')}`);
  const language = config.translation?.sourceLanguage ?? config.stt.language;
  const stt =
    config.stt.provider === 'deepgram'
      ? new deepgram.STT({
          apiKey: env.DEEPGRAM_API_KEY,
          baseUrl: toWs(env.DEEPGRAM_BASE_URL),
          model: config.stt.model ?? 'nova-3',
          ...(language ? { language } : {}),
        })
      : new openai.STT({
          apiKey: env.OPENAI_API_KEY,
          baseURL: env.OPENAI_BASE_URL,
          model: config.stt.model ?? 'whisper-1',
          // The HTTP transcription endpoint: the session segments speech with VAD.
          useRealtime: false,
          ...(language ? { language } : {}),
        });

  const llm = new openai.LLM({
    apiKey: env.OPENAI_API_KEY,
    baseURL: config.llm.baseURL ?? env.OPENAI_BASE_URL,
    model: config.llm.model,
    ...(config.llm.temperature !== undefined ? { temperature: config.llm.temperature } : {}),
    ...(config.llm.maxTokens !== undefined ? { maxCompletionTokens: config.llm.maxTokens } : {}),
  });

  const tts =
    config.tts.provider === 'openai'
      ? new openai.TTS({
          apiKey: env.OPENAI_API_KEY,
          baseURL: env.OPENAI_BASE_URL,
          ...(config.tts.model ? { model: config.tts.model } : {}),
          ...(config.tts.voice ? { voice: config.tts.voice as never } : {}),
          ...(config.tts.speed !== undefined ? { speed: config.tts.speed } : {}),
        })
      : new deepgram.TTS({
          apiKey: env.DEEPGRAM_API_KEY,
          baseUrl: toHttp(env.DEEPGRAM_BASE_URL),
          ...(config.tts.model ?? config.tts.voice ? { model: (config.tts.model ?? config.tts.voice)! } : {}),
          ...(config.tts.speed !== undefined ? { speed: config.tts.speed } : {}),
        });

  return {
    stt,
    llm,
    tts,
    turnHandling: {
      turnDetection: config.turnDetection ?? 'vad',
      interruption: { enabled: config.allowInterruptions, mode: 'vad' },
      ...(config.endpointing ? { endpointing: endpointingOptions(config.endpointing) } : {}),
      // With vision the user's turn gains an image after it ends; a reply started before that would miss it.
      ...(config.vision ? { preemptiveGeneration: { enabled: false } } : {}),
    },
  };
}

/** The config's endpointing in the agents library's terms (milliseconds both). */
function endpointingOptions(e: NonNullable<AgentConfig['endpointing']>) {
  return { ...(e.minDelayMs !== undefined ? { minDelay: e.minDelayMs } : {}), ...(e.maxDelayMs !== undefined ? { maxDelay: e.maxDelayMs } : {}) };
}
