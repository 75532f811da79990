/** Reading Prometheus text exposition (what a /metrics endpoint answers). */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseProm(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of every sample named `name` whose labels include `labels`. */
export function promValue(samples: PromSample[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}

/** Cumulative bucket counts of a histogram, by upper bound (Infinity for +Inf). */
export function promBuckets(samples: PromSample[], name: string, labels: Record<string, string> = {}): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    out.set(le, (out.get(le) ?? 0) + s.value);
  }
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
}

/**
 * The bucket a quantile of the observations between two snapshots falls in:
 * `(lower, upper]`, from the difference of their cumulative bucket counts.
 */
export function bucketOfQuantile(before: Map<number, number>, after: Map<number, number>, q: number): { lower: number; upper: number; n: number } {
  const bounds = [...after.keys()];
  const n = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  const want = Math.ceil(q * n);
  let lower = 0;
  for (const le of bounds) {
    if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= want) return { lower, upper: le, n };
    lower = le;
  }
  return { lower, upper: Infinity, n };
}

/**
 * The q-quantile of a histogram's observations from its cumulative bucket
 * counts, interpolated linearly within the bucket it falls in, as
 * Prometheus's `histogram_quantile` does (0 is the first bucket's lower
 * bound; a quantile in the +Inf bucket is the highest finite bound). NaN
 * without observations.
 */
export function histogramQuantile(buckets: Map<number, number>, q: number): number {
  const entries = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const n = entries.at(-1)?.[1] ?? 0;
  if (!n) return Number.NaN;
  const rank = q * n;
  let lower = 0;
  let below = 0;
  for (const [le, count] of entries) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      return count === below ? le : lower + ((le - lower) * (rank - below)) / (count - below);
    }
    lower = le;
    below = count;
  }
  return Number.NaN;
}

export async function scrape(url: string): Promise<PromSample[]> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parseProm(await res.text());
}
