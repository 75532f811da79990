import { ServerOptions } from '@livekit/agents';
import { fileURLToPath } from 'node:url';
import type { WorkerConfig } from '../common/config.js';

/** The agent file's own path, .ts under tsx and .js when built: job processes load it. */
export const AGENT_FILE = fileURLToPath(new URL(`./agent${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/**
 * LiveKit offers a job only where some worker's reported load is below its
 * target (0.7 by default) and learns of a change ~2.5 s late; the worker's own
 * slot count decides what it takes (worker/job-request.ts), so the load it
 * reports stays under that line and only ranks workers against each other.
 */
const LOAD_CEILING = 0.6;

export interface ServerHooks {
  requestFunc: NonNullable<ConstructorParameters<typeof ServerOptions>[0]['requestFunc']>;
  /** Share of the worker's slots in use (0..1). */
  load(): number;
  idleProcesses: number;
  production: boolean;
}

/**
 * The agent server's options from the worker's settings. The LiveKit URL is
 * passed explicitly: ServerOptions does not read LIVEKIT_URL by itself.
 * `healthPort` is WORKER_HEALTH_PORT, with 0 already made a free port.
 */
export function serverOptions(c: WorkerConfig, healthPort: number, h: ServerHooks): ServerOptions {
  return new ServerOptions({
    agent: AGENT_FILE,
    // No name: LiveKit's automatic dispatch, which offers rooms only to workers registered without one.
    agentName: c.AGENT_DISPATCH === 'automatic' ? '' : c.AGENT_NAME,
    wsURL: c.LIVEKIT_URL,
    apiKey: c.LIVEKIT_API_KEY,
    apiSecret: c.LIVEKIT_API_SECRET,
    requestFunc: h.requestFunc,
    loadFunc: async () => LOAD_CEILING * Math.min(1, h.load()),
    loadThreshold: 1,
    numIdleProcesses: h.idleProcesses,
    host: c.WORKER_HOST,
    port: healthPort,
    production: h.production,
  });
}
