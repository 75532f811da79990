import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export interface WorkerProcess {
  child: ChildProcess;
  metricsPort: number;
  /** The agent server's health endpoint port, from its 'Server is listening on port' line. */
  healthPort: number;
  lines: string[];
  /** Kills the worker and every job process it forked (they share its process group). */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * The real worker entry point (`worker/main.ts dev`, or `start` as in
 * production) as its own process group; resolves once it takes jobs. Unless
 * overridden: one warm process (each costs a core-second or two to start on
 * the test machine) and no CPU guard (the suite loads the machine).
 */
export async function spawnWorker(env: Record<string, string>, overrides: Record<string, string> = {}, mode: 'dev' | 'start' = 'dev'): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts', mode], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info', WORKER_LOAD_THRESHOLD: '1', WORKER_IDLE_PROCESSES: '1', ...overrides },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: string[] = [];
  let metricsPort = 0;
  let healthPort = 0;
  // Ready when it takes jobs: registered with LiveKit and a job process warm.
  const registered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not get ready:\n${lines.slice(-30).join('\n')}`)), 90_000);
    for (const s of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: s }).on('line', (line) => {
        lines.push(line);
        if (process.env.TEST_WORKER_LOGS) process.stderr.write(`[worker] ${line}\n`);
        const port = /"metricsPort":(\d+)/.exec(line);
        if (port) metricsPort = Number(port[1]);
        const health = /Server is listening on port (\d+)/.exec(line);
        if (health) healthPort = Number(health[1]);
        if (line.includes('taking jobs')) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${lines.slice(-30).join('\n')}`)));
  });
  await registered.catch((err: Error) => {
    // Not handed to the test, so nobody else would stop it: the worker and its job processes go now.
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
    throw err;
  });
  return {
    child,
    get healthPort() {
      return healthPort;
    },
    get metricsPort() {
      return metricsPort;
    },
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
