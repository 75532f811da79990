import { z } from 'zod';
import { metadataSchema } from '../schemas/json.js';

/** Agent ids: what a room name (`agent-{id}-room`), a Redis key and a URL path carry as they are. */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The AgentConfig contract: the one definition behind request validation,
 * the TypeScript types, what the registry stores and the API description.
 */

/** Agent-Builder sends ids like `1` and `"123"`: numbers are accepted and kept as strings. */
export const agentIdSchema = z
  .union([z.string(), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)], {
    error: 'expected a string or a whole number',
  })
  .transform((v) => String(v))
  .pipe(z.string().regex(AGENT_ID_PATTERN, '1-64 characters of A-Z a-z 0-9 _ -'))
  .describe('agent id; rooms are named agent-{id}-room');

const shortText = (max: number) => z.string().trim().min(1).max(max);

export const sttSchema = z.strictObject({
  provider: z.enum(['deepgram', 'openai']),
  model: shortText(100).optional(),
  language: shortText(35).optional().describe('BCP-47 language code'),
});

export const llmSchema = z.strictObject({
  provider: z.literal('openai'),
  model: shortText(100),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.number().int().min(1).max(1_000_000).optional(),
  baseURL: z.url({ protocol: /^https?$/ }).max(2048).optional().describe('any OpenAI-compatible server'),
});

export const ttsSchema = z.strictObject({
  provider: z.enum(['openai', 'deepgram']),
  model: shortText(100).optional(),
  voice: shortText(100).optional(),
  speed: z.number().min(0.25).max(4).optional(),
});

export const translationSchema = z.strictObject({
  targetLanguage: shortText(35),
  sourceLanguage: shortText(35).optional(),
});

/**
 * When the user's turn is over: the agents library's endpointing. The wait
 * after the user's last speech is most of the voice-to-voice latency (see
 * docs/BENCHMARKS.md, voice to voice); shorter answers sooner and cuts slow
 * speakers off more often.
 */
export const endpointingSchema = z
  .strictObject({
    minDelayMs: z.number().int().min(0).max(10_000).optional().describe("silence after the user's speech before their turn ends (default 500)"),
    maxDelayMs: z.number().int().min(100).max(30_000).optional().describe('longest wait for the end of the turn (default 3000)'),
  })
  .refine((e) => e.minDelayMs === undefined || e.maxDelayMs === undefined || e.minDelayMs <= e.maxDelayMs, {
    message: 'minDelayMs must not exceed maxDelayMs',
    path: ['minDelayMs'],
  });

/** What Agent-Builder sends. */
export const agentConfigInput = z.strictObject({
  id: agentIdSchema,
  name: shortText(200),
  instructions: shortText(50_000).describe('system prompt'),
  greeting: shortText(2_000).optional().describe('spoken first when the session starts'),
  stt: sttSchema,
  llm: llmSchema,
  tts: ttsSchema,
  avatarModel: shortText(200).optional().describe('BitHuman avatar id'),
  vision: z.boolean().optional(),
  transcription: z.boolean().default(true),
  translation: translationSchema.optional(),
  allowInterruptions: z.boolean().default(true),
  turnDetection: z.enum(['vad', 'stt', 'manual']).optional().describe('vad needs no cloud service'),
  endpointing: endpointingSchema.optional(),
  maxConcurrentSessions: z.number().int().min(1).max(100_000).optional().describe('per-agent cap on running sessions'),
  metadata: metadataSchema.optional(),
});

/** PATCH bodies: any subset of the fields but the id; validated as a whole after merging. */
export const agentConfigPatch = agentConfigInput.omit({ id: true }).partial();

export type AgentConfigInput = z.input<typeof agentConfigInput>;
export type AgentSpec = z.output<typeof agentConfigInput>;

/** What the registry returns: the spec plus what the server keeps. */
export interface AgentConfig extends AgentSpec {
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** A version number of an agent's config: 1 for its first write, one more for each write since. */
export const agentVersionSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const rollbackBody = z.strictObject({ version: agentVersionSchema });
