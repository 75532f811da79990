/**
 * `npm test`: brings up the services the suite needs, runs every mocha test
 * file (or the ones named), prints `N passed, N failed`, and stops only the
 * services it started.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Mocha from 'mocha';
import { setRtcLogLevel } from '../common/rtc-log.js';
import { ROOT } from './lib/paths.js';
import { servicesDown, servicesUp, stackEnv } from './lib/services.js';
import { ensureSystemPackages } from './lib/system-packages.js';

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return name === 'support' ? [] : testFiles(full);
    return name.endsWith('.test.ts') ? [full] : [];
  });
}

const args = process.argv.slice(2);
const grepIndex = args.indexOf('--grep');
const grep = grepIndex >= 0 ? args.splice(grepIndex, 2)[1] : undefined;
const files = (args.length ? args.map((a) => path.resolve(a)) : [path.join(ROOT, 'test')])
  .flatMap((p) => (statSync(p).isDirectory() ? testFiles(p) : [p]))
  .sort();

ensureSystemPackages((m) => console.log(`[setup] ${m}`));
const started = await servicesUp(stackEnv(), (m) => console.log(`[services] ${m}`));
// The test's own LiveKit clients (rtc-node) log every data packet at debug otherwise.
setRtcLogLevel(process.env.TEST_LOG_LEVEL ?? 'warn');
let failures = 1;
try {
  // A committed .only or .skip fails the run instead of hiding tests.
  const mocha = new Mocha({ timeout: 30_000, reporter: 'spec', forbidOnly: true, forbidPending: true, ...(grep ? { grep } : {}) });
  for (const f of files) mocha.addFile(f);
  await mocha.loadFilesAsync();
  const stats = await new Promise<Mocha.Stats>((resolve) => {
    const runner = mocha.run(() => resolve(runner.stats!));
  });
  failures = stats.failures;
  const skipped = stats.pending ? `, ${stats.pending} skipped` : '';
  console.log(`\n${stats.passes} passed, ${stats.failures} failed${skipped}`);
  if (stats.passes + stats.failures === 0) failures = 1;
} catch (err) {
  console.error(err);
  console.log('\n0 passed, 1 failed');
} finally {
  await servicesDown(started, (m) => console.log(`[services] ${m}`));
}
process.exit(failures > 0 ? 1 : 0);
