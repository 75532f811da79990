import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort, OwnServer } from './own-server.js';

/**
 * A redis-server of a test's own, durable like production (AOF); `down` stops
 * it with SIGTERM (Redis writes its AOF and exits) or kills it (`down('SIGKILL')`:
 * what the last fsync did not cover is lost), `up` brings it back from its AOF.
 */
export class OwnRedis extends OwnServer {
  private constructor(
    readonly port: number,
    private readonly fsync: 'everysec' | 'always',
  ) {
    super('redis', 'SIGTERM');
  }

  static async start(fsync: 'everysec' | 'always' = 'everysec'): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort(), fsync);
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected spawn() {
    return spawn(
      'redis-server',
      ['--bind', '127.0.0.1', '--port', String(this.port), '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', this.fsync, '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
  }

  protected answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: this.port });
      s.once('connect', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.once('error', () => resolve(false));
    });
  }
}
