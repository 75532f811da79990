import type { RunningDispatcher } from '../../dispatcher/server.js';
import { startTestApi, type TestApi } from './api.js';
import { startTestDispatcher } from './dispatcher.js';
import { startFakeDeepgram, type FakeDeepgram } from './fakes/deepgram.js';
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js';
import { OwnLivekit } from './livekit-server.js';

export interface WorkerStack {
  openai: FakeOpenAI;
  deepgram: FakeDeepgram;
  livekit: OwnLivekit;
  api: TestApi;
  /** Replaceable: a test may stop it and start another. */
  dispatcher: RunningDispatcher;
  /** A worker's settings for the provider fakes. */
  providers: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * What a test with real agent workers runs them against: the provider fakes,
 * a LiveKit server of its own sending its webhooks to a real API (dispatching
 * into worker slots), and a dispatcher.
 */
export async function startWorkerStack(): Promise<WorkerStack> {
  const [openai, deepgram] = await Promise.all([startFakeOpenAI(), startFakeDeepgram()]);
  const livekit = await OwnLivekit.create();
  // The default dispatch, into worker slots with placement checks (most tests run no worker and dispatch at once).
  const api = await startTestApi({ LIVEKIT_URL: livekit.url, DISPATCH_MODE: 'capacity' });
  livekit.webhookUrl = `${api.url}/api/livekit/webhook`;
  await livekit.up();
  const stack: WorkerStack = {
    openai,
    deepgram,
    livekit,
    api,
    dispatcher: await startTestDispatcher(api.env),
    providers: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: openai.url, DEEPGRAM_API_KEY: 'dg-test', DEEPGRAM_BASE_URL: deepgram.url },
    async stop() {
      await stack.dispatcher.stop();
      await api.stop();
      await livekit.destroy();
      await Promise.all([openai.close(), deepgram.close()]);
    },
  };
  return stack;
}
