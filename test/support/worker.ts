import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import type { WorkerReady } from './worker-entry.js';

export interface WorkerProcess {
  child: ChildProcess;
  metricsPort: number;
  /** The agent server's health endpoint port. */
  healthPort: number;
  lines: string[];
  /** Kills the worker and every job process it forked (they share its process group). */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The real worker (startWorker(), `dev` or `start` as in production, through
 * test/support/worker-entry.ts) as its own process group; resolves once it
 * takes jobs, with the ports it reported over IPC. Unless
 * overridden: one warm process (each costs a core-second or two to start on
 * the test machine) and no CPU guard (the suite loads the machine).
 */
export async function spawnWorker(env: Record<string, string>, overrides: Record<string, string> = {}, mode: 'dev' | 'start' = 'dev'): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/worker-entry.ts', mode], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info', WORKER_LOAD_THRESHOLD: '1', WORKER_IDLE_PROCESSES: '1', ...overrides },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
  });
  const lines: string[] = [];
  // Ready when it takes jobs: registered with LiveKit and a job process warm.
  const registered = new Promise<WorkerReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not get ready:\n${lines.slice(-30).join('\n')}`)), 90_000);
    for (const s of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: s }).on('line', (line) => {
        lines.push(line);
        if (process.env.TEST_WORKER_LOGS) process.stderr.write(`[worker] ${line}\n`);
      });
    }
    child.on('message', (m: WorkerReady) => {
      if (m.type !== 'ready') return;
      clearTimeout(timer);
      resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${lines.slice(-30).join('\n')}`)));
  });
  let ready: WorkerReady;
  try {
    ready = await registered;
  } catch (err) {
    // A worker that never got ready is not left behind with its job processes.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone already */
    }
    throw err;
  }
  const { metricsPort, healthPort } = ready;
  return {
    child,
    healthPort,
    metricsPort,
    lines,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid!, signal);
      } catch {
        child.kill(signal);
      }
      await exited;
    },
  };
}
