import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { startDispatcher, type RunningDispatcher } from '../../dispatcher/server.js';

/** The dispatcher in this process, on the same settings as a test API. */
export function startTestDispatcher(env: Record<string, string>, overrides: Record<string, string> = {}): Promise<RunningDispatcher> {
  return startDispatcher({ ...env, ...overrides });
}

/** The dispatcher as its own process (`dispatcher/main.ts`), to be killed like a real one. */
export async function spawnDispatcher(env: Record<string, string>, overrides: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'dispatcher/main.ts'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info', ...overrides },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error('dispatcher did not start')), 20_000);
    lines.on('line', (line) => {
      if (line.includes('dispatcher ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`dispatcher exited with ${code}`)));
  });
  child.stdout!.resume();
  return child;
}
