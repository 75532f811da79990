import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { startApi, type RunningApi } from '../../api/server.js';
import { freePort } from '../../common/free-port.js';
import { mongoUri, stack, uniqueName } from './env.js';

export { mongoUri };

export const TEST_API_KEY = 'test-api-key-0123456789';

export interface TestApi extends RunningApi {
  env: Record<string, string>;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; body: any }>;
}

/** A test API's settings: its own database and Redis prefix, the local stack's services. */
export function testApiEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const name = uniqueName('t');
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    API_KEYS: TEST_API_KEY,
    REDIS_URL: stack.REDIS_URL,
    MONGODB_URI: mongoUri(name),
    QUEUE_PREFIX: name,
    AGENT_NAME: name,
    DISPATCHER_METRICS_PORT: '0',
    // No worker runs in most tests: dispatch without waiting for worker slots (test/support/worker-stack.ts
    // undoes this), and keep re-dispatch out of their way unless a test asks for it.
    DISPATCH_MODE: 'immediate',
    AGENT_JOIN_TIMEOUT: '600',
    WORKER_METRICS_PORT: '0',
    WORKER_HEALTH_PORT: '0',
    LIVEKIT_URL: stack.LIVEKIT_URL,
    LIVEKIT_API_KEY: stack.LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET: stack.LIVEKIT_API_SECRET,
    ...overrides,
  };
}

/** The real API on a free loopback port, on its own database and Redis prefix. */
export async function startTestApi(overrides: Record<string, string> = {}): Promise<TestApi> {
  const env = testApiEnv(overrides);
  const api = await startApi(env);
  return Object.assign(api, {
    env,
    async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${TEST_API_KEY}`,
          ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      return { status: res.status, headers: res.headers, body: parsed as any };
    },
  });
}

/** A valid AgentConfig body; fields can be overridden per test. */
export function agentBody(id: string | number, extra: Record<string, unknown> = {}) {
  return {
    id,
    name: `Agent ${id}`,
    instructions: 'You are a helpful voice assistant.',
    greeting: 'Hello!',
    stt: { provider: 'deepgram', model: 'nova-3', language: 'en' },
    llm: { provider: 'openai', model: 'gpt-4o-mini', temperature: 0.5 },
    tts: { provider: 'openai', voice: 'alloy' },
    ...extra,
  };
}

export interface ApiProcess {
  url: string;
  child: ChildProcess;
  /** Everything it wrote, stdout and stderr. */
  lines: string[];
  /** SIGKILL; resolves once it is gone. */
  kill(): Promise<void>;
}

/**
 * The API as its own process (`api/main.ts`), a replica as in production, on
 * `env` (a test API's, from testApiEnv or another API's `env`) with its own
 * free port; resolves once it answers /healthz.
 */
export async function spawnApi(env: Record<string, string>, overrides: Record<string, string> = {}): Promise<ApiProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    env: { ...process.env, ...env, PORT: String(port), ...overrides },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) readline.createInterface({ input: s }).on('line', (l) => lines.push(l));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while ((await fetch(`${url}/healthz`).catch(() => undefined))?.status !== 200) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`API process did not start:\n${lines.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    lines,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
