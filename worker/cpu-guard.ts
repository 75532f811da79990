import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const WINDOW_MS = 10_000;
const SAMPLE_MS = 500;
/** Off again only this far below the threshold, so the guard does not flap. */
const HYSTERESIS = 0.05;
/** Linux reports process CPU time in ticks of 1/100 s (USER_HZ). */
const TICKS_PER_SECOND = 100;

interface Sample {
  /** CPU seconds used. */
  busy: number;
  /** CPU seconds available (wall time × cores). */
  total: number;
}

/** CPU seconds of a process (user + system), from /proc; 0 when it is gone. */
function processSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": utime and stime are fields 14 and 15 of stat, here 11 and 12.
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

function children(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function canListChildren(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

/**
 * CPU used by this worker and the job processes it forked (Linux /proc), against
 * all cores: what the worker's own jobs cost, whatever else shares the host.
 * Elsewhere (or without /proc/<pid>/task/<tid>/children) the whole machine's.
 */
function sampler(): () => Sample {
  const cores = os.availableParallelism();
  const start = performance.now();
  if (canListChildren()) {
    // Summed per process as deltas, so a job process that exits takes only its last moments with it.
    let prev = new Map<number, number>();
    let busy = 0;
    return () => {
      const now = new Map<number, number>();
      const queue = [process.pid];
      while (queue.length) {
        const pid = queue.pop()!;
        const seconds = processSeconds(pid);
        now.set(pid, seconds);
        busy += Math.max(0, seconds - (prev.get(pid) ?? 0));
        queue.push(...children(pid));
      }
      prev = now;
      return { busy, total: ((performance.now() - start) / 1000) * cores };
    };
  }
  return () => {
    let busy = 0;
    let total = 0;
    for (const c of os.cpus()) {
      const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
      total += t / 1000;
      busy += (t - c.times.idle) / 1000;
    }
    return { busy, total };
  };
}

/**
 * The CPU the worker's jobs use, averaged over the last 10 s, as a guard only:
 * a worker counts its load in jobs, and holds new jobs back while its jobs
 * have kept the host's cores this busy for a while. One job process starting
 * (a second or two of one core) moves the average little; jobs that saturate
 * the host trip it. Other programs on the host are not counted: refusing jobs
 * would not make them use less.
 */
export class CpuGuard {
  private samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly read = sampler();
  on = false;

  constructor(
    private readonly threshold: number,
    private readonly onChange: (on: boolean) => void = () => undefined,
  ) {}

  start(): void {
    this.samples = [this.read()];
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** CPU use (0..1 of all cores) over the window so far. */
  get average(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.total === first.total) return 0;
    return Math.max(0, (last.busy - first.busy) / (last.total - first.total));
  }

  private sample(): void {
    this.samples.push(this.read());
    if (this.samples.length > WINDOW_MS / SAMPLE_MS + 1) this.samples.shift();
    const avg = this.average;
    const on = this.on ? avg > this.threshold - HYSTERESIS : avg > this.threshold;
    if (on !== this.on) {
      this.on = on;
      this.onChange(on);
    }
  }
}
