import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { startDispatcher, type RunningDispatcher } from '../../dispatcher/server.js';

/** The dispatcher in this process, on the same settings as a test API. */
export function startTestDispatcher(env: Record<string, string>, overrides: Record<string, string> = {}): Promise<RunningDispatcher> {
  return startDispatcher({ ...env, ...overrides });
}

/**
 * The dispatcher as its own process (`dispatcher/main.ts`), to be killed like
 * a real one; `lines` is everything it wrote (its stderr also goes on to the
 * test's).
 */
export async function spawnDispatcher(env: Record<string, string>, overrides: Record<string, string> = {}): Promise<ChildProcess & { lines: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'dispatcher/main.ts'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info', ...overrides },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    lines.push(line);
    process.stderr.write(`${line}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('dispatcher did not start')), 20_000);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if (line.includes('dispatcher ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`dispatcher exited with ${code}`)));
  });
  return Object.assign(child, { lines });
}
