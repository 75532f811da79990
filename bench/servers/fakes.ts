/**
 * The test suite's provider fakes (OpenAI: LLM, TTS; Deepgram: STT) in a
 * process of their own, so serving 100 agent sessions does not share the
 * load generator's event loop. Prints `READY {"openai":…,"deepgram":…}`.
 */
import { startFakeDeepgram } from '../../test/support/fakes/deepgram.js';
import { startFakeOpenAI } from '../../test/support/fakes/openai.js';

const [openai, deepgram] = await Promise.all([startFakeOpenAI(), startFakeDeepgram()]);
process.stdout.write(`READY ${JSON.stringify({ openai: openai.url, deepgram: deepgram.url })}\n`);
process.once('SIGTERM', async () => {
  setTimeout(() => process.exit(0), 3000).unref();
  await Promise.allSettled([openai.close(), deepgram.close()]);
  process.exit(0);
});
