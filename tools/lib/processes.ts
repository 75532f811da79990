import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOG_DIR, RUN_DIR } from './paths.js';

export interface Started {
  name: string;
  pid: number;
  logFile: string;
}

/**
 * Starts a long-lived server detached from this process, output appended to
 * its log file, and records its pid so `stop` can later end exactly it.
 */
export function startDetached(
  name: string,
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Started {
  mkdirSync(LOG_DIR, { recursive: true });
  mkdirSync(RUN_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  child.unref();
  writeFileSync(pidFile(name), JSON.stringify({ pid: child.pid, command }));
  return { name, pid: child.pid, logFile };
}

export function pidFile(name: string): string {
  return path.join(RUN_DIR, `${name}.pid`);
}

/** The pid recorded for `name`, if that process is still the one we started. */
export function recordedPid(name: string): number | undefined {
  const file = pidFile(name);
  if (!existsSync(file)) return undefined;
  try {
    const { pid, command } = JSON.parse(readFileSync(file, 'utf8')) as { pid: number; command: string };
    return isOurs(pid, command) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A pid can be reused by the system: only trust it while its command line still names our binary. */
function isOurs(pid: number, command: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0')[0] === command;
  } catch {
    return false;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. Only the recorded pid is signalled. */
export async function stop(name: string, graceMs = 5000): Promise<boolean> {
  const pid = recordedPid(name);
  rmSync(pidFile(name), { force: true });
  if (pid === undefined) return false;
  await stopPid(pid, graceMs);
  return true;
}

export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
