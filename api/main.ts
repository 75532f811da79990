import { ConfigError } from '../common/config.js';
import { startApi } from './server.js';

try {
  const api = await startApi();
  const shutdown = async () => {
    setTimeout(() => process.exit(1), 10_000).unref();
    await api.stop();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
