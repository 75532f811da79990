import { ConfigError } from '../common/config.js';
import { startDispatcher } from './server.js';

try {
  const d = await startDispatcher();
  const shutdown = async () => {
    setTimeout(() => process.exit(1), 30_000).unref();
    await d.stop();
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
