/**
 * `npm run bench`: brings up the services the benchmarks need, runs each
 * benchmark (median of BENCH_RUNS ≥ 5 runs, each against a baseline measured
 * in the same run), rewrites docs/BENCHMARKS.md, and stops only the services
 * it started.
 *
 * BENCH_ONLY=resolver,batch (names below) measures only those sections and
 * writes them into docs/BENCHMARKS.md in place; the others stay as their
 * earlier run measured them, each dated under its heading. BENCH_RUNS<5,
 * BENCH_SOAK=0 (skips both soaks, 6 and 6b), BENCH_SOAK_SECONDS other than
 * 300 (shortens it), BENCH_SOAK_FAULTS_SECONDS other than 600 (shortens the
 * soak with faults, its faults moved with it) and BENCH_E2E_SESSIONS other
 * than 20 make a development run: its report is printed, docs/BENCHMARKS.md
 * is left alone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setRtcLogLevel } from '../common/rtc-log.js';
import { ROOT } from '../tools/lib/paths.js';
import { servicesDown, servicesUp, stackEnv } from '../tools/lib/services.js';
import { ensureSystemPackages } from '../tools/lib/system-packages.js';
import { benchBatch } from './batch.js';
import { benchDispatch } from './dispatch.js';
import { benchEndToEnd, E2E_SESSIONS } from './end-to-end.js';
import { benchPlacement } from './placement.js';
import { filterClientErrors } from './lib/client-errors.js';
import { loadAverage, machine, versions } from './lib/machine.js';
import { evaluate, fmt, keptSections, previousReport, renderReport, sectionNumber, type KeptSection, type Section } from './lib/report.js';
import { benchRegistryWrites } from './registry-writes.js';
import { benchResolver } from './resolver.js';
import { benchSoak, SOAK_DEFAULT_SECONDS, SOAK_SECONDS } from './soak.js';
import { benchSoakFaults, SOAK_FAULTS_DEFAULT_SECONDS, SOAK_FAULTS_SECONDS } from './soak-faults.js';
import { benchVoice } from './voice.js';
import { benchSessionsHttp } from './sessions-http.js';

const BENCHES: [string, (runs: number, log: (m: string) => void) => Promise<Section>][] = [
  // The README's defaults first: what a user gets.
  ['placement', benchPlacement],
  ['resolver', benchResolver],
  ['registry', benchRegistryWrites],
  ['sessions', benchSessionsHttp],
  ['batch', benchBatch],
  ['dispatch', benchDispatch],
  ['end-to-end', benchEndToEnd],
  ['voice', benchVoice],
  ['soak', benchSoak],
  ['soak-faults', benchSoakFaults],
];

// The bench's own LiveKit clients (rtc-node) log every data packet at debug otherwise.
setRtcLogLevel('warn');
const runs = Number(process.env.BENCH_RUNS ?? 5);
if (!Number.isInteger(runs) || runs < 1) throw new Error('BENCH_RUNS must be a positive integer');
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((n) => !BENCHES.some(([name]) => name === n)) ?? [];
if (unknown.length) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${BENCHES.map(([n]) => n).join(', ')}`);
const skipSoak = process.env.BENCH_SOAK === '0';
const partial =
  runs < 5 || E2E_SESSIONS !== 20 || skipSoak || SOAK_SECONDS !== SOAK_DEFAULT_SECONDS || SOAK_FAULTS_SECONDS !== SOAK_FAULTS_DEFAULT_SECONDS;
const sectional = only !== undefined && only.length < BENCHES.length;
/** The number each section's title starts with: what a BENCH_ONLY run keeps the other sections by. */
const NUMBERS: Record<string, string> = {
  placement: '0',
  resolver: '1a',
  registry: '1b',
  sessions: '2',
  batch: '3',
  dispatch: '4',
  'end-to-end': '5',
  voice: '5b',
  soak: '6',
  'soak-faults': '6b',
};

filterClientErrors();
const startedAt = Date.now();
const log = (m: string) => console.log(m);
if (!only || ['end-to-end', 'placement', 'voice', 'soak-faults'].some((n) => only.includes(n))) {
  // The benchmarks with agent workers (end-to-end, placement, voice, the soak with faults) run them as production does: built.
  log('[bench] npm run build');
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
}
// The voice section speaks with espeak-ng, as the tests do.
ensureSystemPackages((m) => console.log(`[setup] ${m}`));
const started = await servicesUp(stackEnv(), (m) => console.log(`[services] ${m}`));
let code = 1;
try {
  const m = machine();
  const sections: Section[] = [];
  for (const [name, fn] of BENCHES) {
    if (only && !only.includes(name)) continue;
    if ((name === 'soak' || name === 'soak-faults') && skipSoak) {
      log(`[bench] ${name}: skipped (BENCH_SOAK=0)`);
      continue;
    }
    const t = Date.now();
    const oneRun = name === 'soak' ? SOAK_SECONDS : name === 'soak-faults' ? SOAK_FAULTS_SECONDS : undefined;
    log(`[bench] ${name}: ${oneRun !== undefined ? `one run of ${oneRun} s` : `${runs} runs`}`);
    const s = await fn(runs, log);
    sections.push(s);
    for (const f of s.figures) {
      const e = evaluate(f);
      log(`[bench]   ${f.name}: ${fmt(e.value)} ${f.unit} (baseline ${fmt(e.baseline)} ${f.baseline.unit}, ratio ${fmt(e.ratio)})${e.met === undefined ? '' : e.met ? ' target met' : ' TARGET MISSED'}`);
    }
    log(`[bench] ${name}: ${((Date.now() - t) / 1000).toFixed(0)} s`);
  }
  const reportFile = path.join(ROOT, 'docs', 'BENCHMARKS.md');
  const oldReport = existsSync(reportFile) ? readFileSync(reportFile, 'utf8') : undefined;
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const command = sectional ? `BENCH_ONLY=${only!.join(',')} npm run bench` : 'npm run bench';
  // A BENCH_ONLY run keeps every section it did not measure as the last report had it.
  const kept = sectional && oldReport ? keptSections(oldReport) : new Map<string, KeptSection>();
  const order = BENCHES.flatMap(([name]): (Section | KeptSection)[] => {
    const measured = sections.find((s) => sectionNumber(s.title) === NUMBERS[name]);
    if (measured) return [measured];
    const k = kept.get(NUMBERS[name]!);
    return k ? [k] : [];
  });
  const md = renderReport({
    previous: oldReport ? previousReport(oldReport) : undefined,
    order,
    measured: `${date} (\`${command}\`)`,
    date,
    command,
    machine: { ...m, loadAtEnd: loadAverage() },
    versions: versions(),
    sections,
    durationS: (Date.now() - startedAt) / 1000,
  });
  if (partial) {
    log('\n[bench] development run (BENCH_RUNS < 5, BENCH_SOAK=0, BENCH_SOAK_SECONDS, BENCH_SOAK_FAULTS_SECONDS or BENCH_E2E_SESSIONS): docs/BENCHMARKS.md left unchanged\n');
    log(md);
  } else {
    writeFileSync(reportFile, `${md}\n`);
    log(`[bench] wrote ${path.relative(process.cwd(), reportFile)} in ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  }
  code = 0;
} catch (err) {
  console.error(err);
} finally {
  await servicesDown(started, (m) => console.log(`[services] ${m}`));
}
process.exit(code);
