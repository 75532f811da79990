import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mongoose from 'mongoose';
import { loadConfig, sharedEnv } from '../../common/config.js';
import { ensureEmbeddedMongo, ensureLivekitServer } from './binaries.js';
import { CACHE_DIR } from './paths.js';
import { recordedPid, startDetached, stop, tail } from './processes.js';

type Env = ReturnType<typeof stackEnv>;

/** The connection settings of the local stack, from the environment or the shared defaults. */
export function stackEnv(env: NodeJS.ProcessEnv = process.env) {
  const c = loadConfig(sharedEnv, env);
  return {
    REDIS_URL: c.REDIS_URL,
    MONGODB_URI: c.MONGODB_URI,
    LIVEKIT_URL: c.LIVEKIT_URL,
    LIVEKIT_API_KEY: c.LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET: c.LIVEKIT_API_SECRET,
    LIVEKIT_WEBHOOK_URL: env.LIVEKIT_WEBHOOK_URL ?? `http://127.0.0.1:${env.PORT ?? 8080}/api/livekit/webhook`,
  };
}

export interface Service {
  name: 'redis' | 'mongo' | 'livekit';
  address: string;
  answers(): Promise<boolean>;
  start(): Promise<void>;
}

function hostPort(u: string, defaultPort: number): { host: string; port: number } {
  const parsed = new URL(u);
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || defaultPort) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

async function waitFor(name: string, logFile: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ready()) return;
    if (recordedPid(name) === undefined) break;
    await sleep(200);
  }
  throw new Error(`${name} did not become ready; last lines of ${logFile}:\n${tail(logFile)}`);
}

export function redisService(env: Env): Service {
  const { host, port } = hostPort(env.REDIS_URL, 6379);
  const answers = () =>
    new Promise<boolean>((resolve) => {
      const sock = net.connect({ host, port });
      const done = (ok: boolean) => {
        sock.destroy();
        resolve(ok);
      };
      sock.setTimeout(1000, () => done(false));
      sock.once('error', () => done(false));
      sock.once('connect', () => sock.write('PING\r\n'));
      // Any RESP reply (+PONG, or -NOAUTH from a password-protected server) means Redis answers.
      sock.once('data', (d) => done(/^[+-]/.test(d.toString())));
    });
  return {
    name: 'redis',
    address: `${host}:${port}`,
    answers,
    async start() {
      if (!isLoopback(host)) throw new Error(`Redis at ${host}:${port} does not answer (REDIS_URL), and only a loopback one is started here`);
      try {
        execFileSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' });
      } catch {
        throw new Error('redis-server is not installed: apt-get install redis-server');
      }
      const dir = path.join(CACHE_DIR, 'redis-data');
      mkdirSync(dir, { recursive: true });
      const s = startDetached('redis', 'redis-server', [
        '--bind', host === 'localhost' ? '127.0.0.1' : host,
        '--port', String(port),
        '--dir', dir,
        '--save', '',
        '--appendonly', 'no',
        '--maxmemory-policy', 'noeviction',
      ]);
      await waitFor('redis', s.logFile, answers, 15_000);
    },
  };
}

export function mongoService(env: Env): Service {
  const u = new URL(env.MONGODB_URI);
  const { host, port } = u.protocol === 'mongodb:' ? hostPort(env.MONGODB_URI, 27017) : { host: u.hostname, port: 27017 };
  const answers = async () => {
    const conn = mongoose.createConnection(env.MONGODB_URI, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
    try {
      await conn.asPromise();
      await conn.db!.admin().command({ ping: 1 });
      return true;
    } catch {
      return false;
    } finally {
      await conn.close().catch(() => undefined);
    }
  };
  return {
    name: 'mongo',
    address: `${host}:${port}`,
    answers,
    async start() {
      if (u.protocol !== 'mongodb:' || !isLoopback(host)) {
        throw new Error(`MongoDB at ${u.host} does not answer (MONGODB_URI), and only a loopback one is started here`);
      }
      const bin = ensureEmbeddedMongo();
      const s = startDetached('mongo', bin, ['-listen', `${host}:${port}`, '-data', path.join(CACHE_DIR, 'mongo-data')], {
        env: { ...process.env, DO_NOT_TRACK: '1', FERRETDB_TELEMETRY: 'disable' },
      });
      await waitFor('mongo', s.logFile, answers, 30_000);
    },
  };
}

export function livekitService(env: Env): Service {
  const { host, port } = hostPort(env.LIVEKIT_URL.replace(/^ws/, 'http'), 7880);
  const answers = async () => {
    try {
      const res = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200;
    } catch {
      return false;
    }
  };
  return {
    name: 'livekit',
    address: `${host}:${port}`,
    answers,
    async start() {
      if (!isLoopback(host)) throw new Error(`LiveKit at ${host}:${port} does not answer (LIVEKIT_URL), and only a loopback one is started here`);
      const bin = ensureLivekitServer();
      // Webhooks go to the API; everything else is given as the documented flags.
      const configFile = path.join(CACHE_DIR, 'livekit.yaml');
      mkdirSync(CACHE_DIR, { recursive: true });
      writeFileSync(
        configFile,
        `webhook:\n  api_key: ${JSON.stringify(env.LIVEKIT_API_KEY)}\n  urls:\n    - ${JSON.stringify(env.LIVEKIT_WEBHOOK_URL)}\n`,
      );
      const s = startDetached('livekit', bin, [
        '--dev',
        '--config', configFile,
        '--bind', '127.0.0.1',
        '--node-ip', '127.0.0.1',
        '--port', String(port),
        '--keys', `${env.LIVEKIT_API_KEY}: ${env.LIVEKIT_API_SECRET}`,
      ]);
      await waitFor('livekit', s.logFile, answers, 30_000);
    },
  };
}

export function allServices(env: Env): Service[] {
  return [redisService(env), mongoService(env), livekitService(env)];
}

/**
 * Brings up every service that does not answer yet. Returns the names of the
 * ones this call started, so a caller can stop exactly those.
 */
export async function servicesUp(env: Env = stackEnv(), log: (m: string) => void = console.log): Promise<string[]> {
  const started: string[] = [];
  const services = allServices(env);
  // Probe all first: starting one may build a binary and block the event loop.
  const answering = await Promise.all(services.map((svc) => svc.answers()));
  for (const [i, svc] of services.entries()) {
    if (answering[i]) {
      log(`${svc.name}: already answering at ${svc.address}`);
      continue;
    }
    log(`${svc.name}: starting at ${svc.address}`);
    await svc.start();
    started.push(svc.name);
    log(`${svc.name}: ready`);
  }
  return started;
}

export async function servicesDown(names: string[] = ['livekit', 'mongo', 'redis'], log: (m: string) => void = console.log) {
  for (const name of names) {
    if (await stop(name)) log(`${name}: stopped`);
  }
}
