import type { JobContext } from '@livekit/agents';
import type { Room } from '@livekit/rtc-node';
import { llm, voice } from '@livekit/agents';
import { AgentNotFoundError, AgentVersionNotFoundError, toAppError, UnavailableError } from '../common/errors.js';
import type { AgentConfig, Tier } from '../common/agents/index.js';
import type { Logger } from '../common/logger.js';
import type { Turn } from '../common/sessions/index.js';
import { BitHumanAvatar, BITHUMAN_IDENTITY } from './avatar/bithuman.js';
import type { WorkerDeps } from './deps.js';
import { firstUserIn, watchSessionEnd } from './job-room.js';
import { jobTarget, type JobTarget } from './job-target.js';
import type { TurnPart } from './metrics.js';
import { JobSessionRecord } from './session-record.js';
import { publishTurn } from './turn-report.js';
import { instructionsFor, pipelineFor } from './pipeline.js';
import { LatestFrame, RuntimeAgent } from './vision.js';

/** `avatar_not_configured`: the agent has an avatar but this worker no BITHUMAN_API_SECRET, so none was asked for. */
export type AvatarResult = 'started' | 'failed' | 'avatar_not_configured';

export interface JobEvents {
  onResolved?(tier: Tier, seconds: number): void;
  /** `resumed`: the session continues a conversation whose earlier agent died. */
  onStarted?(agentId: string, secondsFromJob: number, resumed?: boolean): void;
  onEnded?(agentId: string, jobId: string): void;
  onFailed?(reason: string): void;
  onAvatar?(result: AvatarResult): void;
  onStage?(stage: 'job_received' | 'session_started', secondsSinceRequest: number): void;
  /** An answered user turn: voice-to-voice seconds and its measured parts. */
  onTurn?(seconds: number, parts: Partial<Record<TurnPart, number>>): void;
}

/** The conversation so far, as the new agent's context: it goes on from there. */
function contextFrom(turns: Turn[]): llm.ChatContext {
  const ctx = llm.ChatContext.empty();
  for (const t of turns) ctx.addMessage({ role: t.role, content: t.text });
  return ctx;
}

/**
 * One job, from LiveKit's dispatch to a speaking agent: find the agent,
 * resolve its config through the cache, build its pipeline, start the avatar
 * if it has one, start the session in the room, greet (or, replacing an agent
 * that died, continue its conversation), and keep the session record in step.
 * The steps are the functions below; the session record is worker/session-record.ts,
 * the pipeline worker/pipeline.ts, the room's end of the session worker/job-room.ts.
 */
export async function runJob(ctx: JobContext, d: WorkerDeps, events: JobEvents = {}): Promise<void> {
  const received = performance.now();
  const roomName = ctx.job.room?.name;
  const jobId = ctx.job.id;
  const target = jobTarget(ctx.job.metadata, roomName, ctx.info.acceptArguments.attributes);
  if (target.requestedAt) events.onStage?.('job_received', (Date.now() - target.requestedAt) / 1000);
  const log = d.log.child({ jobId: ctx.job.id, room: roomName, agentId: target.agentId, sessionId: target.sessionId });
  const record = new JobSessionRecord(
    target.sessionId,
    jobId,
    d,
    log,
    target.automatic && roomName ? { agentId: target.agentId!, roomName, requestedAt: new Date() } : undefined,
  );
  // The dispatcher's join check waits for a job whose worker is still starting its process.
  record.started();
  const fail = async (reason: string) => {
    events.onFailed?.(reason);
    log.warn({ reason }, 'job ended without a session');
    await record.failed(reason);
  };

  if (!target.agentId) return fail('no_agent_id');
  const resolved = await resolveConfig(target.agentId, target, d, events, log);
  if ('failure' in resolved) return fail(resolved.failure);
  const { config } = resolved;

  let pipeline: ReturnType<typeof pipelineFor>;
  try {
    pipeline = pipelineFor(config, d.config);
  } catch (err) {
    // A provider without its key (OPENAI_API_KEY, DEEPGRAM_API_KEY) cannot be built: say so instead of crashing.
    log.error({ err: (err as Error).message }, 'voice pipeline could not be built');
    return fail('provider_not_configured');
  }

  // A session whose earlier agent died has its conversation in Redis: go on from there (read while connecting).
  const sessionId = target.sessionId;
  const loading = sessionId ? d.turns.load(sessionId).catch(() => [] as Turn[]) : Promise.resolve([] as Turn[]);

  // Watch for the user's camera before connecting, so tracks subscribed during the connect are seen.
  // (The participant attributes naming session, agent and worker came with the job's token.)
  const frames = config.vision ? new LatestFrame(ctx.room, new Set([BITHUMAN_IDENTITY])) : undefined;
  const [history] = await Promise.all([loading, ctx.connect()]);
  log.info('room connected');
  // A session that ended while its job was starting (cancelled, its room closed) has no room any more: connecting
  // made a new, empty one. Leave it now, freeing the slot, instead of waiting SESSION_NO_USER_TIMEOUT for nobody.
  if (await record.over()) {
    log.info('session over before its agent joined: leaving');
    ctx.shutdown('session over');
    return;
  }

  const session = new voice.AgentSession(pipeline);
  observeTurns(session, ctx.room, sessionId, d, events, log);
  await startAvatar(config, session, ctx, d, events, log);

  await session.start({
    agent: new RuntimeAgent(instructionsFor(config), frames, history.length ? contextFrom(history) : undefined),
    room: ctx.room,
    outputOptions: { transcriptionEnabled: config.transcription },
  });
  log.info('agent session started');
  const startedAt = Date.now();
  const resumed = history.length > 0;
  events.onStarted?.(config.id, (performance.now() - received) / 1000, resumed);
  if (target.requestedAt) events.onStage?.('session_started', (Date.now() - target.requestedAt) / 1000);
  const firstUser = firstUserIn(ctx.room);
  await record.active(ctx.job.dispatchId || undefined, { ...(firstUser ? { user: firstUser } : {}), configVersion: config.version });

  watchSessionEnd(ctx, session, {
    noUserTimeoutSeconds: d.config.SESSION_NO_USER_TIMEOUT,
    deleteRoomWhenLeft: !!target.automatic,
    log,
    async onEnd(reason) {
      frames?.close();
      events.onEnded?.(config.id, jobId);
      await record.ended({ endedAt: new Date(), durationSeconds: Math.round((Date.now() - startedAt) / 100) / 10, ...(reason ? { failureReason: reason } : {}) });
    },
  });

  if (config.greeting && !resumed) session.say(config.greeting, { allowInterruptions: config.allowInterruptions });
  if (resumed) log.info({ turns: history.length }, 'continuing the conversation of an agent that died');
}

/**
 * The config the session runs: the version it was asked with, not whatever the agent became since; a
 * dispatch without one (made before dispatches carried it, or by something else) runs the current config.
 * An agent or version that does not exist, or a config that cannot be read, is the job's failure reason.
 */
async function resolveConfig(agentId: string, target: JobTarget, d: WorkerDeps, events: JobEvents, log: Logger): Promise<{ config: AgentConfig } | { failure: string }> {
  try {
    const started = performance.now();
    const resolved = target.configVersion !== undefined ? await d.resolver.resolveVersion(agentId, target.configVersion) : await d.resolver.resolve(agentId);
    const config = resolved.config;
    const resolveMs = performance.now() - started;
    events.onResolved?.(resolved.tier, resolveMs / 1000);
    log.info({ tier: resolved.tier, version: config.version, resolveMs: Math.round(resolveMs * 1000) / 1000 }, 'agent config resolved');
    return { config };
  } catch (err) {
    const app = toAppError(err);
    if (app instanceof AgentNotFoundError) return { failure: 'agent_not_found' };
    if (app instanceof AgentVersionNotFoundError) return { failure: 'agent_version_not_found' };
    if (app instanceof UnavailableError) return { failure: 'config_unavailable' };
    throw err;
  }
}

/** Each answered turn's latency to the worker's metrics, and (for a session) every turn kept for an agent that may replace this one. */
function observeTurns(session: voice.AgentSession, room: Room, sessionId: string | undefined, d: WorkerDeps, events: JobEvents, log: Logger): void {
  // Each answer's voice-to-voice latency, as the agent session measures it: the user's end of speech (VAD) to
  // the agent's first audio out, with the user turn's end-of-utterance wait and the answer's first LLM token and TTS audio.
  let endOfTurn: number | undefined;
  session.on(voice.AgentSessionEventTypes.ConversationItemAdded, (ev) => {
    const item = ev.item;
    if (item.type !== 'message') return;
    if (item.role === 'user') endOfTurn = item.metrics.endOfTurnDelay;
    else if (item.role === 'assistant' && item.metrics.e2eLatency !== undefined) {
      const m = item.metrics;
      const parts: Partial<Record<TurnPart, number>> = {};
      if (endOfTurn !== undefined) parts.end_of_turn = endOfTurn;
      if (m.llmNodeTtft !== undefined) parts.llm_ttft = m.llmNodeTtft;
      if (m.ttsNodeTtfb !== undefined) parts.tts_ttfb = m.ttsNodeTtfb;
      events.onTurn?.(m.e2eLatency!, parts);
      publishTurn(room, { seconds: m.e2eLatency!, parts });
      endOfTurn = undefined;
    }
  });
  if (sessionId) {
    session.on(voice.AgentSessionEventTypes.ConversationItemAdded, (ev) => {
      const item = ev.item;
      if (item.type !== 'message' || (item.role !== 'user' && item.role !== 'assistant')) return;
      const text = item.textContent;
      if (text) void d.turns.append(sessionId, { role: item.role, text }).catch((err: Error) => log.warn({ err: err.message }, 'turn not kept'));
    });
  }
}

/** The agent's avatar, before its session starts; none (voice only) when it has none, this worker has no BitHuman secret, or it fails. */
async function startAvatar(config: AgentConfig, session: voice.AgentSession, ctx: JobContext, d: WorkerDeps, events: JobEvents, log: Logger): Promise<void> {
  if (config.avatarModel && !d.config.BITHUMAN_API_SECRET) {
    // Without a secret BitHuman can only answer 401 (after a round trip the greeting would wait for): skip it at once.
    events.onAvatar?.('avatar_not_configured');
    log.warn({ avatarModel: config.avatarModel }, 'agent has an avatar but BITHUMAN_API_SECRET is not set; voice only');
  } else if (config.avatarModel) {
    const avatar = new BitHumanAvatar({
      avatarId: config.avatarModel,
      apiUrl: d.config.BITHUMAN_API_URL,
      apiSecret: d.config.BITHUMAN_API_SECRET,
      mode: d.config.BITHUMAN_MODE,
      livekitUrl: ctx.info.url,
      livekitApiKey: d.config.LIVEKIT_API_KEY,
      livekitApiSecret: d.config.LIVEKIT_API_SECRET,
    });
    try {
      await avatar.start(session, ctx.room);
      events.onAvatar?.('started');
    } catch (err) {
      // No avatar is better than no agent: the session goes on voice-only.
      events.onAvatar?.('failed');
      log.warn({ err: (err as Error).message }, 'avatar did not start; voice only');
    }
  }
}
