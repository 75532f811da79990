import { ConfigError } from './config.js';

/**
 * Runs a service entry point: start it, stop it on SIGTERM/SIGINT with a
 * forced exit if stopping hangs, and turn a configuration error into one line.
 */
export async function runService(start: () => Promise<{ stop(): Promise<void> }>, forceExitMs = 30_000): Promise<void> {
  try {
    const service = await start();
    const shutdown = async () => {
      setTimeout(() => process.exit(1), forceExitMs).unref();
      await service.stop();
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
}
