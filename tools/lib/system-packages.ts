import { execFileSync, spawnSync } from 'node:child_process';

/** Debian packages the test suite needs, by the command each provides. */
const NEEDED: Record<string, string> = {
  'redis-server': 'redis-server',
  'docker-compose': 'docker-compose',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  'espeak-ng': 'espeak-ng',
  sox: 'sox',
  chromium: 'chromium',
};

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * Installs the missing ones with apt-get where that is possible (Debian, as
 * root); elsewhere says which to install. Returns false if some are missing.
 */
export function ensureSystemPackages(log: (m: string) => void = console.log): boolean {
  const missing = [...new Set(Object.entries(NEEDED).filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return true;
  if (process.getuid?.() === 0 && has('apt-get')) {
    log(`installing ${missing.join(' ')} (apt-get)`);
    try {
      execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`], { stdio: 'inherit' });
      return true;
    } catch {
      /* reported below */
    }
  }
  log(`missing system packages for the tests: ${missing.join(' ')} (Debian: apt-get install ${missing.join(' ')})`);
  return false;
}
