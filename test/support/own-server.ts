import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export { freePort } from '../../common/free-port.js';

/**
 * A server process of a test's own (Redis, MongoDB, LiveKit), in a temporary
 * folder, which the test may stop and start again on the same ports and data
 * to see how the system rides out an outage.
 */
export abstract class OwnServer {
  protected child?: ChildProcess;
  protected readonly dir: string;

  protected constructor(kind: string, private readonly stopSignal: NodeJS.Signals) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `agent-runtime-${kind}-`));
  }

  /** Starts the process; resolves once it answers. */
  async up(): Promise<void> {
    this.child = this.spawn();
    const deadline = Date.now() + 20_000;
    while (!(await this.answers())) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`${this.constructor.name} did not start${this.startupLog()}`);
      await sleep(100);
    }
  }

  /** Stops the process with its usual signal, or `signal` (SIGKILL: a crash). */
  async down(signal: NodeJS.Signals = this.stopSignal): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  }

  async destroy(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }

  protected abstract spawn(): ChildProcess;
  protected abstract answers(): Promise<boolean>;
  protected startupLog(): string {
    return '';
  }
}
