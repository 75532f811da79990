import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureLivekitServer } from '../../tools/lib/binaries.js';
import { stack } from './env.js';
import { freePort, OwnServer } from './own-server.js';

/** A LiveKit server of a test's own on free loopback ports; `down` kills it, `up` starts it again on the same ports. */
export class OwnLivekit extends OwnServer {
  /** Sends its webhooks here when set before `up`. */
  webhookUrl?: string;

  private constructor(
    readonly port: number,
    private readonly tcpPort: number,
    private readonly udpPort: number,
    /** Its API key and secret: the local stack's unless a test gives its own. */
    readonly keys: { apiKey: string; apiSecret: string },
  ) {
    super('livekit', 'SIGKILL');
  }

  /** Ports chosen, server not started: lets a test start an API that points at it first. */
  static async create(keys = { apiKey: stack.LIVEKIT_API_KEY, apiSecret: stack.LIVEKIT_API_SECRET }): Promise<OwnLivekit> {
    return new OwnLivekit(await freePort(), await freePort(), await freePort(), keys);
  }

  static async start(): Promise<OwnLivekit> {
    const lk = await OwnLivekit.create();
    await lk.up();
    return lk;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  private get log(): string {
    return path.join(this.dir, 'livekit.log');
  }

  protected spawn() {
    const config = path.join(this.dir, 'livekit.yaml');
    writeFileSync(config, this.webhookUrl ? `webhook:\n  api_key: ${JSON.stringify(this.keys.apiKey)}\n  urls:\n    - ${JSON.stringify(this.webhookUrl)}\n` : '{}\n');
    const fd = openSync(this.log, 'a');
    const child = spawn(
      ensureLivekitServer(),
      [
        '--dev', '--config', config, '--bind', '127.0.0.1', '--node-ip', '127.0.0.1',
        '--port', String(this.port), '--rtc.tcp_port', String(this.tcpPort), '--udp-port', String(this.udpPort),
        '--keys', `${this.keys.apiKey}: ${this.keys.apiSecret}`,
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    return child;
  }

  protected answers(): Promise<boolean> {
    return fetch(`http://127.0.0.1:${this.port}/`).then((r) => r.status === 200, () => false);
  }

  protected override startupLog(): string {
    try {
      return `:\n${readFileSync(this.log, 'utf8').slice(-2000)}`;
    } catch {
      return '';
    }
  }
}
