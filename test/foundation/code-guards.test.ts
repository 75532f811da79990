import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import madge from 'madge';
import { setRtcLogLevel } from '../../common/rtc-log.js';
import { ROOT } from '../../tools/lib/paths.js';

const run = promisify(execFile);

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
