/**
 * Where a server's CPU goes, from a V8 CPU profile (`node --cpu-prof`): each
 * sample is charged to the nearest frame on its stack that belongs to a
 * package or to this project's code, so time spent in Node's own HTTP,
 * crypto or socket code counts for whatever called it. Idle and garbage
 * collection are their own rows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface CpuShare {
  /** A package name, a project folder (api/http), or (idle), (gc), (node). */
  owner: string;
  /** Share of the profile's busy time (idle excluded), 0..1; idle's share is of the whole. */
  share: number;
}

/** The owner of a frame: its package, its project folder, or undefined for Node's own code. */
function ownerOf(url: string): string | undefined {
  if (!url) return undefined;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return undefined;
  const m = /\/(api|common|dispatcher|worker)\/(?:([a-z-]+)\/)?/.exec(url);
  if (!m) return undefined;
  return m[2] ? `${m[1]}/${m[2]}` : m[1];
}

/** CPU shares by owner of the main thread's profile in `dir` (the largest file: the others are helper threads). */
export function cpuShares(dir: string, name?: string): { shares: CpuShare[]; idle: number; busyMs: number } {
  const files = readdirSync(dir).filter((f) => (name ? f === `${name}.cpuprofile` : f.endsWith('.cpuprofile')));
  if (!files.length) throw new Error(`no .cpuprofile in ${dir}`);
  const file = files.map((f) => path.join(dir, f)).sort((a, b) => readFileSync(b).length - readFileSync(a).length)[0]!;
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const owners = new Map<number, string>();
  const ownerOfNode = (id: number): string => {
    const cached = owners.get(id);
    if (cached) return cached;
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    let o: string;
    if (name === '(idle)') o = '(idle)';
    else if (name === '(garbage collector)') o = '(gc)';
    else {
      o = ownerOf(n.callFrame.url) ?? '';
      if (!o) {
        const up = parent.get(id);
        o = up === undefined || byId.get(up)!.callFrame.functionName === '(root)' ? '(node)' : ownerOfNode(up);
      }
    }
    owners.set(id, o);
    return o;
  };
  const time = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const o = ownerOfNode(p.samples[i]!);
    time.set(o, (time.get(o) ?? 0) + dt);
    total += dt;
  }
  const idleUs = time.get('(idle)') ?? 0;
  time.delete('(idle)');
  const busy = total - idleUs;
  const shares = [...time.entries()].map(([owner, us]) => ({ owner, share: us / busy })).sort((a, b) => b.share - a.share);
  return { shares, idle: idleUs / total, busyMs: busy / 1000 };
}

/** "express 21 %, (gc) 12 %, …": the owners above `min` of the busy time, largest first. */
export function sharesText(shares: CpuShare[], min = 0.02): string {
  const shown = shares.filter((s) => s.share >= min);
  const rest = shares.filter((s) => s.share < min).reduce((a, s) => a + s.share, 0);
  return [...shown.map((s) => `${s.owner} ${(s.share * 100).toFixed(0)} %`), ...(rest > 0 ? [`others ${(rest * 100).toFixed(0)} %`] : [])].join(', ');
}
