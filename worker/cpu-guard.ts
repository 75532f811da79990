import os from 'node:os';

const WINDOW_MS = 10_000;
const SAMPLE_MS = 500;
/** Off again only this far below the threshold, so the guard does not flap. */
const HYSTERESIS = 0.05;

function times() {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

/**
 * Machine CPU use averaged over the last 10 s, as a guard only: a worker
 * counts its load in jobs, and holds new jobs back while the machine has
 * been this busy for a while. One job process starting (a second of a full
 * core) moves the average little; a machine that stays saturated trips it.
 */
export class CpuGuard {
  private samples: { busy: number; total: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  on = false;

  constructor(
    private readonly threshold: number,
    private readonly onChange: (on: boolean) => void = () => undefined,
  ) {}

  start(): void {
    this.samples = [times()];
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** CPU use (0..1) over the window so far. */
  get average(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.total === first.total) return 0;
    return (last.busy - first.busy) / (last.total - first.total);
  }

  private sample(): void {
    this.samples.push(times());
    if (this.samples.length > WINDOW_MS / SAMPLE_MS + 1) this.samples.shift();
    const avg = this.average;
    const on = this.on ? avg > this.threshold - HYSTERESIS : avg > this.threshold;
    if (on !== this.on) {
      this.on = on;
      this.onChange(on);
    }
  }
}
