import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureEmbeddedMongo } from '../../tools/lib/binaries.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * A MongoDB-compatible server of a test's own, which the test may stop and
 * start again (same port, same data) to see how the system rides out an outage.
 */
export class OwnMongo {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'agent-runtime-mongo-'));
  private constructor(readonly port: number) {}

  static async start(): Promise<OwnMongo> {
    const m = new OwnMongo(await freePort());
    await m.up();
    return m;
  }

  get uri(): string {
    return `mongodb://127.0.0.1:${this.port}/test`;
  }

  async up(): Promise<void> {
    const bin = ensureEmbeddedMongo();
    this.child = spawn(bin, ['-listen', `127.0.0.1:${this.port}`, '-data', this.dir], {
      stdio: 'ignore',
      env: { ...process.env, DO_NOT_TRACK: '1' },
    });
    const deadline = Date.now() + 15_000;
    while (!(await answers(this.port))) {
      if (Date.now() > deadline) throw new Error('embedded mongo did not start');
      await sleep(100);
    }
  }

  async down(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
