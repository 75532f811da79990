import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureLivekitServer } from '../../tools/lib/binaries.js';
import { freePort } from './mongo-server.js';
import { stack } from './env.js';

/**
 * A LiveKit server of a test's own on free loopback ports, which the test may
 * stop and start again on the same ports.
 */
export class OwnLivekit {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'agent-runtime-livekit-'));
  private constructor(
    readonly port: number,
    private readonly tcpPort: number,
    private readonly udpPort: number,
  ) {}

  static async start(): Promise<OwnLivekit> {
    const lk = new OwnLivekit(await freePort(), await freePort(), await freePort());
    await lk.up();
    return lk;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const log = path.join(this.dir, 'livekit.log');
    const fd = openSync(log, 'a');
    this.child = spawn(
      ensureLivekitServer(),
      [
        '--dev', '--bind', '127.0.0.1', '--node-ip', '127.0.0.1',
        '--port', String(this.port), '--rtc.tcp_port', String(this.tcpPort), '--udp-port', String(this.udpPort),
        '--keys', `${stack.LIVEKIT_API_KEY}: ${stack.LIVEKIT_API_SECRET}`,
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${this.port}/`).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`livekit-server did not start:\n${readFileSync(log, 'utf8').slice(-2000)}`);
      }
      await sleep(100);
    }
  }

  async down(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
