import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import readline from 'node:readline';
import { ROOT } from '../../tools/lib/paths.js';

export interface WorkerProcess {
  pid: number;
  metricsPort: number;
  /** The last lines the worker and its job processes wrote (for error messages). */
  tail(n?: number): string;
  /** Kills the worker and every job process it forked (they share its process group). */
  kill(graceMs?: number): Promise<void>;
}

/**
 * The real agent worker as production runs it (`node dist/worker/main.js
 * start`: the built JavaScript, JSON logs; `npm run build` first) in a process
 * group of its own, at nice 10; resolves once it has registered with LiveKit.
 * Deployed, workers have hosts of their own; here they share two cores with
 * everything else, and the lower priority keeps their job process starts (seconds
 * of CPU each) from starving the API, the dispatcher, the database and LiveKit. Every line it or its job processes write
 * (they inherit its stdout) is handed to `onLine`.
 */
export async function spawnWorker(env: Record<string, string>, onLine: (line: string) => void = () => {}): Promise<WorkerProcess> {
  const child: ChildProcess = spawn(process.execPath, ['dist/worker/main.js', 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // Job processes are forked later and inherit it.
  setPriority(child.pid!, 10);
  const last: string[] = [];
  let metricsPort = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const registered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not register within 90 s:\n${last.join('\n')}`)), 90_000);
    for (const s of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: s }).on('line', (line) => {
        last.push(line);
        if (last.length > 50) last.shift();
        if (process.env.BENCH_WORKER_LOGS) process.stderr.write(`[worker] ${line}\n`);
        const port = /"metricsPort":(\d+)/.exec(line);
        if (port && !metricsPort) metricsPort = Number(port[1]);
        if (line.includes('registered worker')) {
          clearTimeout(timer);
          resolve();
        }
        onLine(line);
      });
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}:\n${last.join('\n')}`));
    });
  });
  registered.catch(() => undefined);
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* the group is gone */
    }
  };
  /** SIGTERM to the group, then SIGKILL to whatever of it is left after `graceMs`. */
  const kill = async (graceMs = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    // Job processes outliving the worker are in its group too.
    signalGroup('SIGKILL');
  };
  try {
    await registered;
  } catch (err) {
    await kill(0);
    throw err;
  }
  return {
    pid: child.pid!,
    get metricsPort() {
      return metricsPort;
    },
    tail: (n = 30) => last.slice(-n).join('\n'),
    kill,
  };
}
