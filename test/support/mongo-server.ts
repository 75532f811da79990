import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { ensureEmbeddedMongo } from '../../tools/lib/binaries.js';
import { freePort, OwnServer } from './own-server.js';

export { freePort };

/** A MongoDB-compatible server of a test's own; `down` kills it (SIGKILL), `up` brings it back with its data. */
export class OwnMongo extends OwnServer {
  private constructor(readonly port: number) {
    super('mongo', 'SIGKILL');
  }

  static async start(): Promise<OwnMongo> {
    const m = new OwnMongo(await freePort());
    await m.up();
    return m;
  }

  get uri(): string {
    return `mongodb://127.0.0.1:${this.port}/test`;
  }

  protected spawn() {
    return spawn(ensureEmbeddedMongo(), ['-listen', `127.0.0.1:${this.port}`, '-data', path.join(this.dir, 'data')], {
      stdio: 'ignore',
      env: { ...process.env, DO_NOT_TRACK: '1' },
    });
  }

  protected answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
  }
}
