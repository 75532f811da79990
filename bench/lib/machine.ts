import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../../tools/lib/paths.js';
import { LIVEKIT_VERSION } from '../../tools/lib/binaries.js';
import type { Machine } from './report.js';

export function loadAverage(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(', ');
}

export function machine(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    /* not Linux: os.cpus() */
  }
  let distro = '';
  try {
    distro = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    /* none */
  }
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: os.totalmem() / 1024 ** 3,
    os: `${distro ? `${distro}, ` : ''}${os.type()} ${os.release()} ${os.arch()}`,
    loadAtStart: loadAverage(),
  };
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function redisVersion(): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return 'unknown (redis-server not on PATH)';
  }
}

/** FerretDB as pinned by the embedded server's go.mod. */
function ferretVersion(): string {
  try {
    const mod = readFileSync(path.join(ROOT, 'tools', 'embedded-mongo', 'go.mod'), 'utf8');
    return /github\.com\/FerretDB\/FerretDB (v\S+)/.exec(mod)?.[1] ?? 'v1.24.2';
  } catch {
    return 'v1.24.2';
  }
}

export function versions(): [string, string][] {
  return [
    ['Node.js', process.version],
    ['Redis (redis-server --version)', redisVersion()],
    ['livekit-server (tools/lib/binaries.ts LIVEKIT_VERSION)', LIVEKIT_VERSION],
    ['FerretDB (embedded, tools/embedded-mongo)', ferretVersion()],
    ['bullmq', pkgVersion('bullmq')],
    ['express', pkgVersion('express')],
    ['livekit-server-sdk', pkgVersion('livekit-server-sdk')],
    ['ioredis', pkgVersion('ioredis')],
    ['mongoose', pkgVersion('mongoose')],
    ['autocannon (load generator)', pkgVersion('autocannon')],
  ];
}
