import { adminApiKeys, apiEnv, dispatcherEnv, loadConfig, workerEnv } from '../../common/config.js';
import { configuredProviders, missingProvidersWarning } from '../../common/workers/providers.js';

const host = (h: string) => (h === '0.0.0.0' ? '127.0.0.1' : h);

/**
 * What `npm start` prints once the stack is ready: where everything is, the
 * key to use, and a warning when the worker has no provider keys (every
 * session would fail with provider_not_configured). Keys set in the
 * environment are never printed, only the development defaults.
 */
export function startBanner(env: NodeJS.ProcessEnv): string[] {
  const api = loadConfig(apiEnv, env);
  const dispatcher = loadConfig(dispatcherEnv, env);
  const worker = loadConfig(workerEnv, env);
  const url = `http://${host(api.HOST)}:${api.PORT}`;
  const key = env.API_KEYS ? '(a key from API_KEYS)' : api.API_KEYS[0]!;
  const admin = adminApiKeys(api);
  const adminKey = env.ADMIN_API_KEYS ? 'a key from ADMIN_API_KEYS' : `key ${admin[0]}`;
  const lines = [
    'ready: an agent worker takes jobs',
    `  API        ${url}   key: ${key}`,
    `  LiveKit    ${api.LIVEKIT_URL}`,
    `  API docs   ${url}/docs`,
    `  playground ${url}/playground   (talk to an agent from this browser)`,
    admin.length ? `  queues     ${url}/admin/queues   (${adminKey}; user name: any)` : '  queues     off: set ADMIN_API_KEYS',
    `  metrics    ${url}/metrics, http://${host(dispatcher.DISPATCHER_HOST)}:${dispatcher.DISPATCHER_METRICS_PORT}/metrics (dispatcher), http://${host(worker.WORKER_HOST)}:${worker.WORKER_METRICS_PORT}/metrics (worker)`,
    '  CLI        npx agent-runtime --help',
  ];
  const warning = missingProvidersWarning(configuredProviders(worker));
  if (warning) lines.push(`warning: ${warning}`);
  return lines;
}
