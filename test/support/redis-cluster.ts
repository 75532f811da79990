import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './own-server.js';

const run = promisify(execFile);

/**
 * A Redis Cluster of a test's own: three masters (`--cluster-enabled yes`) on
 * loopback, joined with `redis-cli --cluster create`, each slot served by
 * one of them. Its URLs name one node with `?cluster=1`, as a deployment's
 * REDIS_URL would.
 */
export class OwnRedisCluster {
  private constructor(
    readonly ports: number[],
    private readonly children: ChildProcess[],
    private readonly dir: string,
  ) {}

  static async start(masters = 3): Promise<OwnRedisCluster> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-runtime-redis-cluster-'));
    const ports: number[] = [];
    // Each node needs its port and a bus port: both chosen free, the bus given explicitly (Redis ≥ 7).
    for (let i = 0; i < masters; i++) ports.push(await freePort());
    const children: ChildProcess[] = [];
    for (const port of ports) {
      const nodeDir = path.join(dir, String(port));
      mkdirSync(nodeDir);
      children.push(
        spawn(
          'redis-server',
          [
            '--bind', '127.0.0.1', '--port', String(port), '--cluster-enabled', 'yes', '--cluster-port', String(await freePort()),
            '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--dir', nodeDir,
            '--save', '', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction',
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    const cluster = new OwnRedisCluster(ports, children, dir);
    try {
      for (const port of ports) await cluster.waitFor(port, async () => (await cluster.cli(port, 'PING')) === 'PONG');
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
      for (const port of ports) await cluster.waitFor(port, async () => (await cluster.cli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'));
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  async cli(port: number, ...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 }).catch(() => ({ stdout: '' }));
    return stdout.trim();
  }

  private async waitFor(port: number, ok: () => Promise<boolean>, ms = 20_000) {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`redis cluster node ${port} not ready`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The port of the master serving `key`'s slot. */
  async ownerOf(key: string): Promise<number> {
    const slot = Number(await this.cli(this.ports[0]!, 'CLUSTER', 'KEYSLOT', key));
    const nodes = await this.cli(this.ports[0]!, 'CLUSTER', 'NODES');
    for (const line of nodes.split('\n')) {
      const [, addr, flags, , , , , , ...ranges] = line.split(' ');
      if (!flags?.includes('master')) continue;
      for (const r of ranges) {
        const [from, to = from] = r.split('-').map(Number);
        if (slot >= from! && slot <= to!) return Number(addr!.split(':')[1]!.split('@')[0]);
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** A REDIS_URL naming the cluster by the node on `port`. */
  urlVia(port = this.ports[0]!): string {
    return `redis://127.0.0.1:${port}?cluster=1`;
  }

  async destroy(): Promise<void> {
    await Promise.all(
      this.children.map((c) => {
        if (c.exitCode !== null || c.signalCode !== null) return undefined;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        return exited;
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}
