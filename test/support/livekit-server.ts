import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  /** Sends its webhooks here when set before `up`. */
  webhookUrl?: string;

  /** Ports chosen, server not started: lets a test start an API that points at it first. */
  static async create(): Promise<OwnLivekit> {
    return new OwnLivekit(await freePort(), await freePort(), await freePort());
  }

  static async start(): Promise<OwnLivekit> {
    const lk = await OwnLivekit.create();
    await lk.up();
    return lk;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const log = path.join(this.dir, 'livekit.log');
    const fd = openSync(log, 'a');
    const config = path.join(this.dir, 'livekit.yaml');
    writeFileSync(config, this.webhookUrl ? `webhook:\n  api_key: ${JSON.stringify(stack.LIVEKIT_API_KEY)}\n  urls:\n    - ${JSON.stringify(this.webhookUrl)}\n` : '{}\n');
    this.child = spawn(
      ensureLivekitServer(),
      [
        '--dev', '--config', config, '--bind', '127.0.0.1', '--node-ip', '127.0.0.1',
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
