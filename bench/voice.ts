/**
 * Voice-to-voice latency: from the last sound of the user's speech to the
 * first sound of the agent's answer, heard by a real WebRTC participant, with
 * provider fakes that answer at once, so the figure is what the runtime adds
 * (end-of-speech wait, STT final, LLM and TTS plumbing, WebRTC both ways).
 */
import { AudioSource, AudioStream, LocalAudioTrack, Room, RoomEvent, TrackKind, TrackPublishOptions, TrackSource, type RemoteTrack } from '@livekit/rtc-node';
import { AccessToken } from 'livekit-server-sdk';
import { setTimeout as sleep } from 'node:timers/promises';
import { concatPcm, rms, silencePcm, speechPcm } from '../test/support/fakes/audio.js';
import { TestUser } from '../test/support/user.js';
import { startChild, type ChildServer } from './lib/child.js';
import { agentBody, call, dropEnv, isolatedEnv, stack } from './lib/env.js';
import { parseProm, promValue } from './lib/prom.js';
import { fmt, type Section } from './lib/report.js';
import { median, percentile } from './lib/stats.js';
import { spawnWorker, type WorkerProcess } from './lib/worker.js';

type Log = (m: string) => void;

const RATE = 48000;
const TURNS = 20;
const WARM_TURNS = 3;
const PHRASE = 'what is the weather like today';
/** The user's silence after each phrase: longer than any end-of-turn wait, so every turn is answered. */
const TRAILING_S = 2;
const TARGET_ADDED_P50_MS = 600;
/** Beside the defaults: the same turns with the agent's endpointing minimum delay lowered (agent setting endpointing.minDelayMs). */
const TUNED_MIN_DELAY_MS = 250;
const TUNED_TURNS = 10;
const TARGET_ADDED_P95_MS = 900;

/** Ms from the start of `pcm` to its first and past its last audible 10 ms. */
function audibleSpan(pcm: Int16Array, rate: number): { first: number; last: number } {
  const n = rate / 100;
  let first = -1;
  let last = -1;
  for (let i = 0; i + n <= pcm.length; i += n) {
    if (rms(pcm.subarray(i, i + n)) > 0.01) {
      if (first < 0) first = i;
      last = i + n;
    }
  }
  return { first: (first / rate) * 1000, last: (last / rate) * 1000 };
}

async function token(room: string, identity: string): Promise<string> {
  const at = new AccessToken(stack.LIVEKIT_API_KEY, stack.LIVEKIT_API_SECRET, { identity, ttl: 600 });
  at.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}

/** A participant that plays back every audio frame it receives: the LiveKit-only round trip. */
async function startEcho(room: string): Promise<() => Promise<void>> {
  const r = new Room();
  const source = new AudioSource(RATE, 1);
  r.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
    if (track.kind !== TrackKind.KIND_AUDIO) return;
    void (async () => {
      for await (const frame of new AudioStream(track, RATE, 1)) await source.captureFrame(frame);
    })().catch(() => undefined);
  });
  await r.connect(stack.LIVEKIT_URL, await token(room, 'echo'), { autoSubscribe: true, dynacast: false });
  await r.localParticipant!.publishTrack(LocalAudioTrack.createAudioTrack('echo', source), new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
  return () => r.disconnect();
}

export async function benchVoice(runs: number, log: Log): Promise<Section> {
  const env = isolatedEnv('voice');
  let api: ChildServer | undefined;
  let dispatcher: ChildServer | undefined;
  let fakes: ChildServer | undefined;
  let worker: WorkerProcess | undefined;
  const out = { p50: [] as number[], p95: [] as number[], eP50: [] as number[], eP95: [] as number[], tP50: [] as number[], tP95: [] as number[] };
  const tunedEndOfTurn: number[] = [];
  const runLines: string[] = [];
  const parts = { end_of_turn: [] as number[], llm_ttft: [] as number[], tts_ttfb: [] as number[], session: [] as number[] };
  const phrase = speechPcm(PHRASE, RATE);
  const pcm = concatPcm(phrase, silencePcm(TRAILING_S, RATE));
  const span = audibleSpan(pcm, RATE);
  const pcmMs = (pcm.length / RATE) * 1000;
  try {
    fakes = await startChild('fakes.ts', {});
    const providers = JSON.parse(fakes.url) as { openai: string; deepgram: string };
    api = await startChild('api.ts', { ...env, LOG_LEVEL: 'error' });
    await call(api.url, 'POST', '/api/agents/register', agentBody('voice', { greeting: 'Ready.' }), 201);
    await call(api.url, 'POST', '/api/agents/register', agentBody('voice-tuned', { greeting: 'Ready.', endpointing: { minDelayMs: TUNED_MIN_DELAY_MS } }), 201);
    dispatcher = await startChild('dispatcher.ts', env);
    worker = await spawnWorker({
      ...env,
      // spawnWorker waits for the agents library's 'registered worker' line, logged at info.
      LOG_LEVEL: 'info',
      WORKER_HOST: '127.0.0.1',
      WORKER_HEALTH_PORT: '0',
      WORKER_METRICS_PORT: '0',
      WORKER_LOAD_THRESHOLD: '1',
      WORKER_IDLE_PROCESSES: '2',
      OPENAI_API_KEY: 'sk-bench',
      OPENAI_BASE_URL: providers.openai,
      DEEPGRAM_API_KEY: 'dg-bench',
      DEEPGRAM_BASE_URL: providers.deepgram,
    });
    const metrics = async () => parseProm(await (await fetch(`http://127.0.0.1:${worker!.metricsPort}/metrics`)).text());

    for (let run = -1; run < runs; run++) {
      const turns = run < 0 ? WARM_TURNS : TURNS;
      // Baseline first: the same phrase through LiveKit to an echo and back, timed onset to onset.
      const echoRoom = `${env.QUEUE_PREFIX}-echo-${run + 1}`;
      const stopEcho = await startEcho(echoRoom);
      const caller = await TestUser.join(stack.LIVEKIT_URL, await token(echoRoom, 'caller'), { microphone: true });
      const echoes: number[] = [];
      try {
        for (let i = 0; i < turns; i++) {
          const started = Date.now();
          await caller.speak(pcm, RATE);
          const heard = caller.firstAudibleAt(started + span.first);
          if (heard !== undefined) echoes.push(heard - (started + span.first));
          await sleep(300);
        }
      } finally {
        await caller.leave();
        await stopEcho();
      }

      /** One session of `agentId`: per turn, the phrase's last sound to the answer's first. */
      const conversation = async (agentId: string, n: number) => {
        const s = (await call(api!.url, 'POST', '/api/sessions', { agentId }, 202)).body as { sessionId: string; participantToken: string };
        const user = await TestUser.join(stack.LIVEKIT_URL, s.participantToken, { microphone: true });
        const before = await metrics();
        const v2v: number[] = [];
        try {
          const joined = Date.now();
          await user.agentQuiet(joined, 800, 60_000);
          for (let i = 0; i < n; i++) {
            await user.speak(pcm, RATE);
            // Played out: the phrase's last sound was `pcmMs - span.last` ago.
            const speechEnd = Date.now() - (pcmMs - span.last);
            const answered = user.firstAudibleAt(speechEnd);
            if (answered !== undefined) v2v.push(answered - speechEnd);
            await user.agentQuiet(speechEnd);
          }
        } finally {
          await user.leave();
          await call(api!.url, 'DELETE', `/api/sessions/${s.sessionId}`).catch(() => undefined);
        }
        const after = await metrics();
        const mean = (name: string, labels: Record<string, string> = {}) => {
          const k = promValue(after, `${name}_count`, labels) - promValue(before, `${name}_count`, labels);
          return k > 0 ? ((promValue(after, `${name}_sum`, labels) - promValue(before, `${name}_sum`, labels)) / k) * 1000 : NaN;
        };
        return { v2v, mean };
      };
      const { v2v, mean } = await conversation('voice', turns);
      const tuned = await conversation('voice-tuned', run < 0 ? WARM_TURNS : TUNED_TURNS);
      const line =
        `voice-to-voice p50 ${fmt(percentile(v2v, 50))} ms p95 ${fmt(percentile(v2v, 95))} ms over ${v2v.length}/${turns} answered turns; ` +
        `LiveKit echo p50 ${fmt(percentile(echoes, 50))} ms p95 ${fmt(percentile(echoes, 95))} ms (${echoes.length}/${turns}); ` +
        `the session's own measure (agent_runtime_turn_latency_seconds, user's VAD end of speech → agent audio out) mean ${fmt(mean('agent_runtime_turn_latency_seconds'))} ms, ` +
        `its parts mean: end of turn ${fmt(mean('agent_runtime_turn_part_seconds', { part: 'end_of_turn' }))} ms, LLM first token ${fmt(mean('agent_runtime_turn_part_seconds', { part: 'llm_ttft' }))} ms, TTS first audio ${fmt(mean('agent_runtime_turn_part_seconds', { part: 'tts_ttfb' }))} ms; ` +
        `tuned (endpointing.minDelayMs ${TUNED_MIN_DELAY_MS}): voice-to-voice p50 ${fmt(percentile(tuned.v2v, 50))} ms p95 ${fmt(percentile(tuned.v2v, 95))} ms over ${tuned.v2v.length} turns, end of turn mean ${fmt(tuned.mean('agent_runtime_turn_part_seconds', { part: 'end_of_turn' }))} ms`;
      if (run < 0) {
        log(`  warm-up: ${line}`);
        continue;
      }
      log(`  run ${run + 1}/${runs}: ${line}`);
      runLines.push(`Run ${run + 1}: ${line}.`);
      out.p50.push(percentile(v2v, 50));
      out.p95.push(percentile(v2v, 95));
      out.eP50.push(percentile(echoes, 50));
      out.eP95.push(percentile(echoes, 95));
      parts.end_of_turn.push(mean('agent_runtime_turn_part_seconds', { part: 'end_of_turn' }));
      parts.llm_ttft.push(mean('agent_runtime_turn_part_seconds', { part: 'llm_ttft' }));
      parts.tts_ttfb.push(mean('agent_runtime_turn_part_seconds', { part: 'tts_ttfb' }));
      parts.session.push(mean('agent_runtime_turn_latency_seconds'));
      out.tP50.push(percentile(tuned.v2v, 50));
      out.tP95.push(percentile(tuned.v2v, 95));
      tunedEndOfTurn.push(tuned.mean('agent_runtime_turn_part_seconds', { part: 'end_of_turn' }));
    }
  } finally {
    await worker?.kill(0);
    await dispatcher?.stop();
    await api?.stop();
    await fakes?.stop();
    await dropEnv(env);
  }
  const added50 = median(out.p50) - median(out.eP50);
  return {
    title: '5b. Voice to voice: end of the user\'s speech to the agent\'s first sound',
    method: [
      `One session on the whole stack (the real API, dispatcher and agent worker as production runs it, the local livekit-server, the test suite's OpenAI and Deepgram fakes in their own process, answering at once). A user participant (@livekit/rtc-node, in this process) joins with the session's token, waits for the greeting to end, then per turn says "${PHRASE}" (espeak-ng, ${RATE / 1000} kHz, ${fmt(span.last - span.first)} ms of sound) followed by ${TRAILING_S} s of silence on its microphone track, and waits for the answer to end. The figure, per turn: from the moment the phrase's last sound was played out (the microphone source's playout, less the trailing silence) to the first 10 ms frame of the agent's track it receives whose RMS is above 0.01; p50 and p95 per run over ${TURNS} turns (a warm-up run of ${WARM_TURNS} turns is discarded). Default settings: the agent's turn detection is VAD, the agents library's endpointing waits at least 0.5 s of silence (minDelay 500 ms) before it ends the user's turn.`,
      `Baseline, in the same run just before: the same phrase from a participant to an echo participant that plays back every frame it receives, in a room of its own on the same LiveKit, timed from the phrase's first sound to the first audible frame of the echo: two WebRTC legs, as the answer has (user → agent, agent → user), without the runtime. Target (issue 14): the runtime's share, the figure minus the echo, p50 ≤ ${TARGET_ADDED_P50_MS} ms and p95 ≤ ${TARGET_ADDED_P95_MS} ms.`,
      `Tuned, beside the defaults: right after the default session in each run, a second session of an agent registered with \`endpointing: {minDelayMs: ${TUNED_MIN_DELAY_MS}}\`, ${TUNED_TURNS} turns measured the same way (its p95 over ${TUNED_TURNS} is near their maximum), against the same echo baseline.`,
    ],
    figures: [
      {
        name: 'voice-to-voice p50',
        unit: 'ms',
        runs: out.p50,
        baseline: { name: 'LiveKit echo round trip p50', unit: 'ms', runs: out.eP50 },
        target: { on: 'offset', op: '<=', limit: TARGET_ADDED_P50_MS },
      },
      {
        name: 'voice-to-voice p95',
        unit: 'ms',
        runs: out.p95,
        baseline: { name: 'LiveKit echo round trip p95', unit: 'ms', runs: out.eP95 },
        target: { on: 'offset', op: '<=', limit: TARGET_ADDED_P95_MS },
      },
      {
        name: `tuned, endpointing.minDelayMs ${TUNED_MIN_DELAY_MS}: voice-to-voice p50`,
        unit: 'ms',
        runs: out.tP50,
        baseline: { name: 'LiveKit echo round trip p50', unit: 'ms', runs: out.eP50 },
        target: { on: 'offset', op: '<=', limit: TARGET_ADDED_P50_MS },
      },
      {
        name: `tuned, endpointing.minDelayMs ${TUNED_MIN_DELAY_MS}: voice-to-voice p95`,
        unit: 'ms',
        runs: out.tP95,
        baseline: { name: 'LiveKit echo round trip p95', unit: 'ms', runs: out.eP95 },
        target: { on: 'offset', op: '<=', limit: TARGET_ADDED_P95_MS },
      },
    ],
    notes: [
      `Where the time goes (medians over the runs of each run's mean, from the worker's agent_runtime_turn_part_seconds): end of turn (the end-of-utterance wait after the user's VAD end of speech, endpointing minDelay included) ${fmt(median(parts.end_of_turn))} ms, LLM first token ${fmt(median(parts.llm_ttft))} ms, TTS first audio ${fmt(median(parts.tts_ttfb))} ms; the session's own voice-to-voice measure (agent_runtime_turn_latency_seconds) ${fmt(median(parts.session))} ms. The runtime's share at the median: ${fmt(added50)} ms.`,
      `What moves it: the endpointing minimum delay (0.5 s by default in @livekit/agents 1.9) is a floor under every turn with VAD turn detection; the VAD's own end-of-speech silence comes before it. An agent sets it with \`endpointing.minDelayMs\`: at ${TUNED_MIN_DELAY_MS} ms the end-of-turn part was ${fmt(median(tunedEndOfTurn))} ms (median of the runs' means) and the runtime's share at the median ${fmt(median(out.tP50) - median(out.eP50))} ms. Lower answers sooner and cuts slow speakers off more often: the default stays the library's.`,
      ...runLines,
    ],
  };
}
