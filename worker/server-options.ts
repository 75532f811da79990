import { ServerOptions, type AgentServer } from '@livekit/agents';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { WorkerConfig } from '../common/config.js';

/** The agent file's own path, .ts under tsx and .js when built: job processes load it. */
export const AGENT_FILE = fileURLToPath(new URL(`./agent${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/** A port free on `host` now: the agent server reads port 0 as "the default" (8081 in production), not "any". */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The agent server's options from the worker's settings. The LiveKit URL is
 * passed explicitly: ServerOptions does not read LIVEKIT_URL by itself.
 * `healthPort` is WORKER_HEALTH_PORT, with 0 already made a free port.
 */
export function serverOptions(c: WorkerConfig, healthPort = c.WORKER_HEALTH_PORT): ServerOptions {
  return new ServerOptions({
    agent: AGENT_FILE,
    agentName: c.AGENT_NAME,
    wsURL: c.LIVEKIT_URL,
    apiKey: c.LIVEKIT_API_KEY,
    apiSecret: c.LIVEKIT_API_SECRET,
    loadThreshold: c.WORKER_LOAD_THRESHOLD,
    // Job count is a steadier measure than CPU where machines are shared or bursty.
    ...(c.WORKER_MAX_JOBS > 0 ? { loadFunc: async (server: AgentServer) => server.activeJobs.length / c.WORKER_MAX_JOBS } : {}),
    numIdleProcesses: c.WORKER_IDLE_PROCESSES,
    host: c.WORKER_HOST,
    port: healthPort,
  });
}
