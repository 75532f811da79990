import type { JobContext } from '@livekit/agents';
import { voice } from '@livekit/agents';
import { AgentNotFoundError, UnavailableError } from '../common/errors.js';
import type { AgentConfig } from '../common/schemas/agent-config.js';
import type { Tier } from '../common/agent-resolver.js';
import { AGENT_ATTRIBUTE, SESSION_ATTRIBUTE, WORKER_ATTRIBUTE } from '../common/sessions/attributes.js';
import { BitHumanAvatar, BITHUMAN_IDENTITY } from './avatar/bithuman.js';
import type { WorkerDeps } from './deps.js';
import { jobTarget } from './job-target.js';
import { instructionsFor, pipelineFor } from './pipeline.js';
import { LatestFrame, RuntimeAgent } from './vision.js';

export interface JobEvents {
  onResolved?(tier: Tier, seconds: number): void;
  onStarted?(agentId: string, secondsFromJob: number): void;
  onEnded?(agentId: string): void;
  onFailed?(reason: string): void;
  onAvatar?(result: 'started' | 'failed'): void;
  onStage?(stage: 'job_received' | 'session_started', secondsSinceRequest: number): void;
}

/**
 * One job, from LiveKit's dispatch to a speaking agent: find the agent,
 * resolve its config through the cache, build its pipeline, start the avatar
 * if it has one, start the session in the room, greet, and keep the session
 * record in step.
 */
export async function runJob(ctx: JobContext, d: WorkerDeps, events: JobEvents = {}): Promise<void> {
  const received = performance.now();
  const roomName = ctx.job.room?.name;
  const target = jobTarget(ctx.job.metadata, roomName);
  if (target.requestedAt) events.onStage?.('job_received', (Date.now() - target.requestedAt) / 1000);
  const log = d.log.child({ jobId: ctx.job.id, room: roomName, agentId: target.agentId, sessionId: target.sessionId });
  const record = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'session record not updated');
    }
  };
  const fail = async (reason: string) => {
    events.onFailed?.(reason);
    log.warn({ reason }, 'job ended without a session');
    if (target.sessionId) await record(() => d.store.transition(target.sessionId!, 'failed', { failureReason: reason }));
  };

  if (!target.agentId) return fail('no_agent_id');
  let config: AgentConfig;
  try {
    const started = performance.now();
    const resolved = await d.resolver.resolve(target.agentId);
    config = resolved.config;
    events.onResolved?.(resolved.tier, (performance.now() - started) / 1000);
    log.info({ tier: resolved.tier, version: config.version }, 'agent config resolved');
  } catch (err) {
    if (err instanceof AgentNotFoundError) return fail('agent_not_found');
    if (err instanceof UnavailableError) return fail('config_unavailable');
    throw err;
  }

  let pipeline: ReturnType<typeof pipelineFor>;
  try {
    pipeline = pipelineFor(config, d.config);
  } catch (err) {
    // A provider without its key (OPENAI_API_KEY, DEEPGRAM_API_KEY) cannot be built: say so instead of crashing.
    log.error({ err: (err as Error).message }, 'voice pipeline could not be built');
    return fail('provider_not_configured');
  }

  // Watch for the user's camera before connecting, so tracks subscribed during the connect are seen.
  const frames = config.vision ? new LatestFrame(ctx.room, new Set([BITHUMAN_IDENTITY])) : undefined;
  await ctx.connect();
  await ctx.room.localParticipant?.setAttributes({
    [SESSION_ATTRIBUTE]: target.sessionId ?? '',
    [AGENT_ATTRIBUTE]: config.id,
    [WORKER_ATTRIBUTE]: ctx.workerId,
  });

  const session = new voice.AgentSession(pipeline);

  if (config.avatarModel) {
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

  await session.start({
    agent: new RuntimeAgent(instructionsFor(config), frames),
    room: ctx.room,
    outputOptions: { transcriptionEnabled: config.transcription },
  });
  const startedAt = Date.now();
  events.onStarted?.(config.id, (performance.now() - received) / 1000);
  if (target.requestedAt) events.onStage?.('session_started', (Date.now() - target.requestedAt) / 1000);
  if (target.sessionId) {
    // The agent knows which dispatch it serves; the dispatcher made it with the room and never saw its id.
    const dispatchId = ctx.job.dispatchId || undefined;
    await record(async () => {
      if (!(await d.store.transition(target.sessionId!, 'active', dispatchId ? { dispatchId } : {})) && dispatchId) {
        await d.store.update(target.sessionId!, 'active', { dispatchId }); // LiveKit's webhook recorded it active first
      }
    });
  }

  ctx.addShutdownCallback(async () => {
    frames?.close();
    events.onEnded?.(config.id);
    if (target.sessionId) {
      await record(() =>
        d.store.transition(target.sessionId!, 'ended', { endedAt: new Date(), durationSeconds: Math.round((Date.now() - startedAt) / 100) / 10 }),
      );
    }
  });
  session.on(voice.AgentSessionEventTypes.Close, () => ctx.shutdown('agent session closed'));

  if (config.greeting) session.say(config.greeting, { allowInterruptions: config.allowInterruptions });
}
