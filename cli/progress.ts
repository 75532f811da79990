/** A batch's progress on a terminal: one redrawn bar on a TTY, plain lines elsewhere. */
export interface BatchProgress {
  batchId: string;
  accepted: number;
  counts: Record<string, number>;
  done: boolean;
}

const WIDTH = 30;

/** Sessions past the queue (no longer queued or being dispatched): what the bar fills with. */
export function settled(p: BatchProgress): number {
  return p.accepted - (p.counts.queued ?? 0) - (p.counts.dispatching ?? 0);
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}

/** The one line: bar, settled/accepted, counts that are not zero, rate and ETA. */
export function progressLine(p: BatchProgress, elapsedMs: number, bar: boolean): string {
  const n = settled(p);
  const rate = elapsedMs > 0 ? n / (elapsedMs / 1000) : 0;
  const eta = p.done ? 0 : rate > 0 ? (p.accepted - n) / rate : Infinity;
  const counts = Object.entries(p.counts).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none yet';
  const filled = p.accepted ? Math.round((n / p.accepted) * WIDTH) : WIDTH;
  const head = bar ? `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ` : '';
  return `${head}${n}/${p.accepted} | ${counts} | ${rate.toFixed(1)}/s | ${p.done ? 'done' : `ETA ${duration(eta)}`}`;
}

export class ProgressView {
  private readonly started = Date.now();
  private last = '';

  constructor(private readonly out: NodeJS.WriteStream) {}

  private get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  update(p: BatchProgress): void {
    const line = progressLine(p, Date.now() - this.started, this.tty);
    if (this.tty) this.out.write(`\r\x1b[2K${line}`);
    // Without a terminal only changes are written, one line each, so a log stays readable.
    else if (line.replace(/ \| [^|]*\/s \| .*$/, '') !== this.last.replace(/ \| [^|]*\/s \| .*$/, '') || p.done) this.out.write(`${line}\n`);
    this.last = line;
  }

  end(): void {
    if (this.tty) this.out.write('\n');
  }
}
