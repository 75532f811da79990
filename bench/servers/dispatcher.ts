/** The real dispatcher (startDispatcher) on the settings in its environment; prints `READY <metrics url>`. */
import { startDispatcher } from '../../dispatcher/server.js';

const d = await startDispatcher(process.env);
process.stdout.write(`READY http://127.0.0.1:${d.metricsPort}/metrics\n`);
process.once('SIGTERM', async () => {
  setTimeout(() => process.exit(1), 15_000).unref();
  await d.stop();
  process.exit(0);
});
