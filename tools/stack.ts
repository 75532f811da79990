/**
 * `npm start`: the whole stack on one machine. Brings up the services that do
 * not answer yet, then runs the API, the dispatcher and the worker as separate
 * processes with prefixed logs. Ctrl-C stops them, then the services it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { apiEnv, loadConfig } from '../common/config.js';
import { ROOT } from './lib/paths.js';
import { servicesDown, servicesUp, stackEnv } from './lib/services.js';
import { startBanner } from './lib/banner.js';

const APPS = [
  { name: 'api', entry: 'api/main.ts', args: [] as string[] },
  { name: 'dispatcher', entry: 'dispatcher/main.ts', args: [] as string[] },
  { name: 'worker', entry: 'worker/main.ts', args: ['dev'] },
];
const width = Math.max(...APPS.map((a) => a.name.length));

function prefixed(name: string, stream: NodeJS.ReadableStream, out: NodeJS.WriteStream) {
  const rl = readline.createInterface({ input: stream });
  rl.on('line', (line) => out.write(`${name.padEnd(width)} | ${line}\n`));
}

const started = await servicesUp(stackEnv(), (m) => console.log(`${'stack'.padEnd(width)} | ${m}`));
const children = new Map<string, ChildProcess>();
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  const exits = [...children.values()].map(
    (c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()))),
  );
  for (const c of children.values()) signalGroup(c, 'SIGTERM');
  // The worker's job processes ignore SIGTERM (@livekit/agents): whatever is left of a group is killed.
  const force = setTimeout(() => children.forEach((c) => signalGroup(c, 'SIGKILL')), 15_000);
  await Promise.all(exits);
  clearTimeout(force);
  for (const c of children.values()) signalGroup(c, 'SIGKILL');
  await servicesDown(started, (m) => console.log(`${'stack'.padEnd(width)} | ${m}`));
  process.exit(code);
}

/** Each service runs in a process group of its own, with whatever it forks (the worker's job processes). */
function signalGroup(c: ChildProcess, signal: NodeJS.Signals) {
  try {
    process.kill(-c.pid!, signal);
  } catch {
    /* the group is gone */
  }
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

for (const app of APPS) {
  if (!existsSync(path.join(ROOT, app.entry))) continue;
  const child = spawn(process.execPath, ['--import', 'tsx', app.entry, ...app.args], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.set(app.name, child);
  prefixed(app.name, child.stdout!, process.stdout);
  prefixed(app.name, child.stderr!, process.stderr);
  child.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`${app.name.padEnd(width)} | exited (${signal ?? code}); stopping the stack`);
    void shutdown(1);
  });
}
if (children.size === 0) console.log(`${'stack'.padEnd(width)} | services are up; no service entry points yet`);
else void announceReady();

/** Says so once the API is ready: Redis and MongoDB answer and an agent worker can take a job. */
async function announceReady() {
  const config = loadConfig(apiEnv);
  const api = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
  for (;;) {
    if (stopping) return;
    const ready = await fetch(`${api}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const line of startBanner(process.env)) console.log(`${'stack'.padEnd(width)} | ${line}`);
}
