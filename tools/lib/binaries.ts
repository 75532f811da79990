import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN_DIR, ROOT } from './paths.js';

/** Pinned: later tags carry `replace` directives that `go install` refuses. */
export const LIVEKIT_VERSION = 'v1.13.5';

function go(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  try {
    execFileSync('go', args, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, CGO_ENABLED: '0', DO_NOT_TRACK: '1', ...opts.env },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error('Go is needed to build the local LiveKit and MongoDB-compatible servers: install Go 1.26 or newer');
    throw new Error(`go ${args.join(' ')} failed`);
  }
}

/** The real livekit-server at the pinned version, built once with `go install`. */
export function ensureLivekitServer(log: (msg: string) => void = console.log): string {
  const dir = path.join(BIN_DIR, `livekit-${LIVEKIT_VERSION}`);
  const bin = path.join(dir, 'livekit-server');
  if (existsSync(bin)) return bin;
  log(`building livekit-server ${LIVEKIT_VERSION} with go install (first run only, a few minutes)`);
  mkdirSync(dir, { recursive: true });
  const gobin = mkdtempSync(path.join(os.tmpdir(), 'livekit-gobin-'));
  try {
    go(['install', `github.com/livekit/livekit-server/cmd/server@${LIVEKIT_VERSION}`], { env: { GOBIN: gobin }, cwd: os.tmpdir() });
    renameSync(path.join(gobin, 'server'), bin);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  return bin;
}

const MONGO_SRC = path.join(ROOT, 'tools', 'embedded-mongo');

/** Content hash of the program's sources: checkouts reset mtimes, hashes survive. */
function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(MONGO_SRC).sort()) h.update(f).update(readFileSync(path.join(MONGO_SRC, f)));
  return h.digest('hex').slice(0, 12);
}

/** The embedded FerretDB server of tools/embedded-mongo, rebuilt when its source changes. */
export function ensureEmbeddedMongo(log: (msg: string) => void = console.log): string {
  const bin = path.join(BIN_DIR, `embedded-mongo-${sourceHash()}`, 'embedded-mongo');
  if (existsSync(bin)) return bin;
  log('building tools/embedded-mongo (FerretDB embedded; first run only)');
  mkdirSync(path.dirname(bin), { recursive: true });
  go(['build', '-o', bin, '.'], { cwd: MONGO_SRC });
  return bin;
}
