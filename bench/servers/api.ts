/** The real API (startApi) on the settings in its environment; prints `READY <url>`. */
import { startApi } from '../../api/server.js';
import { profileOnSignal } from './profiler.js';

const profile = profileOnSignal('api');
const api = await startApi(process.env);
process.stdout.write(`READY ${api.url}\n`);
process.once('SIGTERM', async () => {
  setTimeout(() => process.exit(1), 8000).unref();
  await profile.write();
  await api.stop();
  process.exit(0);
});
