import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import madge from 'madge';
import { setRtcLogLevel } from '../../common/rtc-log.js';
import { ROOT } from '../../tools/lib/paths.js';

const run = promisify(execFile);

/** Every .ts file under `dir` (relative to the project root). */
function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) return sources(rel);
    return name.endsWith('.ts') ? [rel] : [];
  });
}

/** A catch that swallows the error without a word. */
const SILENT_CATCH = /\.catch\(\s*(?:\(\s*\w*\s*\)|\w+)\s*=>\s*(?:undefined|null|void 0|\{\s*\})\s*\)/;
/** Writes to the records a session or worker keeps in Redis (the session store, placements, agent slots, turns, worker capacity). */
const RECORD_WRITE = /\.(transition|update|createQueued|createBatch|deleteBatch|claim|replace|finish|started|take|release|append|heartbeat|leave|reserve|unreserve|forget|markWaiting|unmarkWaiting)\(/;

/** The statements of `text` that write a record and drop its failure silently, as `file:line`. */
function silentRecordWrites(file: string, text: string): string[] {
  const lines = text.split('\n');
  return lines.flatMap((line, i) => {
    if (!SILENT_CATCH.test(line)) return [];
    // A chained `.catch` on a line of its own belongs to the call a few lines up.
    const statement = lines.slice(Math.max(0, i - 3), i + 1).join('\n');
    const own = line.trimStart().startsWith('.') ? statement : line;
    return RECORD_WRITE.test(own) ? [`${file}:${i + 1}`] : [];
  });
}

/** The files and folders a document names (`api/…`, `common/…/`), each with whether it exists; `*` matches one path segment. */
function namedPaths(doc: string): { name: string; exists: boolean }[] {
  const names = new Set<string>();
  for (const m of doc.matchAll(/(?<![\w./-])((?:api|dispatcher|worker|common|test|tools|bench|cli|grafana|bin|docs)\/[\w.*/-]*)/g)) {
    const name = m[1]!.replace(/\.+$/, '');
    if (/\.(ts|md|json|ya?ml|go|mjs|sh|png)$/.test(name) || name.endsWith('/')) names.add(name);
  }
  const expand = (base: string, segments: string[]): boolean => {
    if (!segments.length) return existsSync(path.join(ROOT, base));
    const [head, ...rest] = segments as [string, ...string[]];
    if (!head.includes('*')) return expand(path.join(base, head), rest);
    const dir = path.join(ROOT, base);
    if (!existsSync(dir)) return false;
    const re = new RegExp(`^${head.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`);
    return readdirSync(dir).some((entry) => re.test(entry) && expand(path.join(base, entry), rest));
  };
  return [...names].sort().map((name) => ({ name, exists: expand('', name.split('/').filter(Boolean)) }));
}

describe('code guards', function () {
  this.timeout(180_000);

  it('when the whole project is type-checked (tsc --noEmit, strict), then it has no error', async () => {
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const out = await run(process.execPath, [tsc, '--noEmit', '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, maxBuffer: 16 << 20 }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err) }),
    );
    expect(out.stdout.trim(), 'tsc errors').to.equal('');
  });

  it('when the modules are graphed (type-only imports aside), then no import cycle exists, services depend only on common/, and agents and sessions are reached through their index', async () => {
    const graph = await madge(['api', 'dispatcher', 'worker', 'common', 'tools', 'bench'], {
      baseDir: ROOT,
      fileExtensions: ['ts'],
      tsConfig: path.join(ROOT, 'tsconfig.json'),
      detectiveOptions: { ts: { skipTypeImports: true }, es6: { skipTypeImports: true } },
    });
    const edges = graph.obj();
    expect(Object.keys(edges).length, 'modules found').to.be.above(100);
    expect(edges['api/server.ts'], 'imports resolved').to.include('common/sessions/index.ts');
    expect(graph.circular()).to.deep.equal([]);
    const crossing = Object.entries(edges).flatMap(([from, tos]) => {
      const svc = from.split('/')[0]!;
      if (!['api', 'dispatcher', 'worker', 'common'].includes(svc)) return [];
      return tos.filter((to) => to.split('/')[0] !== svc && to.split('/')[0] !== 'common').map((to) => `${from} → ${to}`);
    });
    expect(crossing, 'services import each other').to.deep.equal([]);
    // common/agents and common/sessions show the rest of the code one face: their index.ts.
    const behindFace = Object.entries(edges).flatMap(([from, tos]) =>
      tos
        .filter((to) => ['common/agents/', 'common/sessions/'].some((dir) => to.startsWith(dir) && !from.startsWith(dir) && to !== `${dir}index.ts`))
        .map((to) => `${from} → ${to}`),
    );
    expect(behindFace, 'imports past a folder index').to.deep.equal([]);
  });

  it('when a record write in the services fails, then the failure is logged, never dropped by a silent catch', () => {
    // The detector itself, on a silent and a logging catch, so a broken pattern cannot pass by finding nothing.
    expect(silentRecordWrites('x.ts', 'await store.transition(id, "failed").catch(() => undefined);')).to.deep.equal(['x.ts:1']);
    expect(silentRecordWrites('x.ts', 'await placements\n  .started(id, job)\n  .catch(() => {});')).to.deep.equal(['x.ts:3']);
    expect(silentRecordWrites('x.ts', 'await store.transition(id, "failed").catch((e: Error) => log.warn({ err: e.message }, "not recorded"));')).to.deep.equal([]);
    expect(silentRecordWrites('x.ts', 'await rooms.deleteRoom(name).catch(() => undefined);')).to.deep.equal([]);

    const files = ['api', 'dispatcher', 'worker', 'common'].flatMap(sources);
    expect(files.length, 'service sources found').to.be.above(80);
    const silent = files.flatMap((f) => silentRecordWrites(f, readFileSync(path.join(ROOT, f), 'utf8')));
    expect(silent, 'record writes whose failure is dropped without a log line').to.deep.equal([]);
  });

  it('when the services need a group of session statuses, then they take it from common/sessions/state.ts instead of restating it', () => {
    const statuses = 'queued|dispatching|dispatched|active|recovering|ended|failed|cancelled';
    // Two statuses in a list, or two compared in one condition, is a group restated.
    const restated = new RegExp(`\\[\\s*'(${statuses})'\\s*,\\s*'(${statuses})'|status\\s*[!=]==\\s*'(${statuses})'\\s*(\\|\\||&&)[^;]*status\\s*[!=]==\\s*'(${statuses})'`);
    expect(restated.test("if (s.status !== 'dispatched' && s.status !== 'recovering') return;")).to.equal(true);
    expect(restated.test("const PLACEABLE = ['dispatched', 'recovering'];")).to.equal(true);
    expect(restated.test("if (s.status === 'active') return;")).to.equal(false);

    const owners = ['common/sessions/state.ts', 'common/sessions/schema.ts'];
    const files = ['api', 'dispatcher', 'worker', 'common'].flatMap(sources).filter((f) => !owners.includes(f));
    const found = files.flatMap((f) =>
      readFileSync(path.join(ROOT, f), 'utf8')
        .split('\n')
        .flatMap((line, i) => (restated.test(line) ? [`${f}:${i + 1}`] : [])),
    );
    expect(found, 'status groups restated').to.deep.equal([]);
  });

  it('when docs/ARCHITECTURE.md names a file or folder of the project, then it exists', () => {
    expect(namedPaths('see `common/sessions/state.ts`, api/*/routes.ts and common/nowhere.ts.')).to.deep.equal([
      { name: 'api/*/routes.ts', exists: true },
      { name: 'common/nowhere.ts', exists: false },
      { name: 'common/sessions/state.ts', exists: true },
    ]);
    const named = namedPaths(readFileSync(path.join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8'));
    expect(named.length, 'paths named').to.be.above(30);
    expect(named.filter((n) => !n.exists).map((n) => n.name), 'named but missing').to.deep.equal([]);
  });

  it('when the rtc-node log level is set, then the library logger (lk-rtc) takes it, so its debug lines stay out of test and worker output', () => {
    const require = createRequire(import.meta.url);
    const { log } = require(path.join(path.dirname(require.resolve('@livekit/rtc-node')), 'log.cjs')) as { log: { level: string; isLevelEnabled(l: string): boolean } };
    const before = log.level;
    try {
      setRtcLogLevel('error');
      expect(log.isLevelEnabled('debug')).to.equal(false);
      expect(log.level).to.equal('error');
    } finally {
      log.level = before;
    }
  });
});
