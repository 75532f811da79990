/**
 * Which speech and language providers a worker can serve: a provider is usable
 * only with its key in the worker's environment (an OpenAI-compatible server at
 * OPENAI_BASE_URL still takes OPENAI_API_KEY, any value it accepts). Workers
 * publish theirs with each heartbeat, so the API can warn when an agent is
 * registered that no running worker could start: its sessions would fail with
 * `provider_not_configured`.
 */
export const PROVIDERS = ['openai', 'deepgram'] as const;
export type Provider = (typeof PROVIDERS)[number];

const KEY_OF: Record<Provider, string> = { openai: 'OPENAI_API_KEY', deepgram: 'DEEPGRAM_API_KEY' };

export function configuredProviders(env: { OPENAI_API_KEY?: string; DEEPGRAM_API_KEY?: string }): Provider[] {
  return PROVIDERS.filter((p) => Boolean(env[KEY_OF[p] as 'OPENAI_API_KEY' | 'DEEPGRAM_API_KEY']));
}

/** The providers an agent config needs: its STT's, the LLM's (always OpenAI-compatible) and its TTS's. */
export function providersNeeded(config: { stt: { provider: string }; tts: { provider: string } }): Provider[] {
  const need = new Set<string>([config.stt.provider, 'openai', config.tts.provider]);
  return PROVIDERS.filter((p) => need.has(p));
}

/**
 * One plain sentence for operators when providers are missing (undefined when
 * none is): what will fail, and which variables to set.
 */
export function missingProvidersWarning(configured: readonly Provider[]): string | undefined {
  const missing = PROVIDERS.filter((p) => !configured.includes(p));
  if (missing.length === 0) return undefined;
  const vars = missing.map((p) => KEY_OF[p]).join(' and ');
  const compatible = missing.includes('openai') ? ' (or point OPENAI_BASE_URL at any OpenAI-compatible server and set OPENAI_API_KEY to a key it accepts)' : '';
  return `${vars} not set: sessions of agents using ${missing.join(' or ')} will fail with provider_not_configured. Set ${vars} for the worker${compatible}.`;
}

/**
 * Warnings for registering `config`, from the providers of the live workers:
 * none when one of them can serve every provider it needs; `undefined` workers
 * means nothing is known (no worker has a heartbeat).
 */
export function registrationWarnings(config: { stt: { provider: string }; tts: { provider: string } }, workers: { providers?: Provider[] }[] | undefined): string[] {
  if (workers === undefined) return ['no agent worker is running, so its providers could not be checked; sessions wait in the queue until one starts'];
  const needed = providersNeeded(config);
  // Workers from before providers were published say nothing: they are not held against the agent.
  const known = workers.filter((w) => Array.isArray(w.providers));
  if (known.length < workers.length || known.some((w) => needed.every((p) => w.providers!.includes(p)))) return [];
  const served = new Set(known.flatMap((w) => w.providers!));
  const missing = needed.filter((p) => !served.has(p));
  const vars = (missing.length ? missing : needed).map((p) => KEY_OF[p]).join(', ');
  return [
    `no running agent worker can serve this agent's providers (${needed.join(', ')}): its sessions will fail with provider_not_configured until a worker runs with ${vars} set`,
  ];
}
