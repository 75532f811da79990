import { median } from './stats.js';

/**
 * What a target is checked against: the figure's own median, its ratio to
 * the baseline, or how far it is above the baseline (median − baseline
 * median, in the figure's unit).
 */
export interface Target {
  on: 'value' | 'ratio' | 'offset';
  op: '<=' | '>=';
  limit: number;
}

export interface Figure {
  name: string;
  unit: string;
  /** One value per measured run. */
  runs: number[];
  baseline: { name: string; unit: string; runs: number[] };
  /** One target, or several that must all be met. */
  target?: Target | Target[];
}

export interface Section {
  title: string;
  /** What was measured and how, one paragraph per entry. */
  method: string[];
  figures: Figure[];
  notes?: string[];
  /** Markdown lines printed as they are after the notes (a table, say). */
  extra?: string[];
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  loadAtStart: string;
  loadAtEnd?: string;
}

/** The previous report's medians, by section title and figure name, to print beside the new ones. */
export interface Previous {
  date: string;
  medians: Map<string, string>;
}

const key = (section: string, figure: string) => `${section.replace(/\s*\(issue \d+\)$/, '')}|${figure}`;

/** Reads the Summary table of an earlier docs/BENCHMARKS.md. */
export function previousReport(md: string): Previous | undefined {
  const date = /^- Date: (\S+)/m.exec(md)?.[1];
  if (!date) return undefined;
  const medians = new Map<string, string>();
  const summary = md.split('## Summary')[1]?.split('\n## ')[0] ?? '';
  for (const line of summary.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 5 || cells[1] === 'Benchmark' || cells[1]?.startsWith('---')) continue;
    medians.set(key(cells[1]!, cells[2]!), cells[3]!);
  }
  return { date, medians };
}

/**
 * A section of an earlier report kept as it was, for a run that measured only
 * some sections (BENCH_ONLY): its summary rows and its block, verbatim.
 */
export interface KeptSection {
  /** The number the title starts with ("1b."), which names a section across runs. */
  number: string;
  title: string;
  measured: string;
  summaryRows: string[];
  block: string;
}

/** The sections of an earlier docs/BENCHMARKS.md, by the number their title starts with. */
export function keptSections(md: string): Map<string, KeptSection> {
  const date = /^- Date: (\S+)/m.exec(md)?.[1] ?? 'an earlier run';
  const summary = md.split('## Summary')[1]?.split('\n## ')[0] ?? '';
  const out = new Map<string, KeptSection>();
  for (const chunk of md.split('\n## ').slice(1)) {
    const title = chunk.split('\n', 1)[0]!.trim();
    const number = sectionNumber(title);
    if (!number) continue;
    const measured = /^Measured: (.+)$/m.exec(chunk)?.[1] ?? `${date} (npm run bench)`;
    const body = chunk.slice(chunk.indexOf('\n') + 1).replace(/^\n?Measured: .+\n\n/, '\n');
    out.set(number, {
      number,
      title,
      measured,
      summaryRows: summary.split('\n').filter((l) => l.startsWith(`| ${title} |`)),
      block: `## ${title}\n\nMeasured: ${measured}\n${body.replace(/\s+$/, '')}\n`,
    });
  }
  return out;
}

/** "1b." of "1b. Registry writes (issue 3)". */
export function sectionNumber(title: string): string | undefined {
  return /^(\d+[a-z]?)\./.exec(title)?.[1];
}

export interface ReportInput {
  previous?: Previous;
  /**
   * Every section in report order: measured in this run, or kept from the
   * previous report (a BENCH_ONLY run).
   */
  order?: (Section | KeptSection)[];
  /** What this run measured, said in each of its sections ("2026-12-04T… (npm run bench, BENCH_ONLY=…)"). */
  measured?: string;
  date: string;
  command: string;
  machine: Machine;
  versions: [string, string][];
  sections: Section[];
  durationS: number;
}

export interface Evaluated {
  value: number;
  baseline: number;
  ratio: number;
  met: boolean | undefined;
}

export function evaluate(f: Figure): Evaluated {
  const value = median(f.runs);
  const baseline = median(f.baseline.runs);
  const ratio = value / baseline;
  let met: boolean | undefined;
  if (f.target) {
    met = [f.target].flat().every((t) => {
      const x = t.on === 'value' ? value : t.on === 'ratio' ? ratio : value - baseline;
      return t.op === '<=' ? x <= t.limit : x >= t.limit;
    });
  }
  return { value, baseline, ratio, met };
}

/** Three significant digits, without exponent notation. */
export function fmt(x: number): string {
  if (x === Infinity) return '∞';
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 100) return Math.round(x).toLocaleString('en-US');
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  if (abs === 0) return '0';
  return x.toPrecision(3);
}

function targetText(f: Figure): string {
  if (!f.target) return '—';
  return [f.target]
    .flat()
    .map((t) => {
      const op = t.op === '<=' ? '≤' : '≥';
      const limit = t.limit.toLocaleString('en-US');
      return t.on === 'value' ? `${op} ${limit} ${f.unit}` : t.on === 'ratio' ? `${op} ${limit}× baseline` : `${op} baseline + ${limit} ${f.unit}`;
    })
    .join(' and ');
}

const isKept = (s: Section | KeptSection): s is KeptSection => 'block' in s;

export function renderReport(r: ReportInput): string {
  const order = r.order ?? r.sections;
  const kept = order.filter(isKept);
  const out: string[] = [];
  out.push('# Benchmarks');
  out.push('');
  out.push('Generated by `npm run bench` (bench/run.ts), which rewrites this file. Do not edit by hand.');
  out.push('');
  out.push(`- Date: ${r.date} (whole run: ${Math.round(r.durationS)} s)`);
  out.push(`- Command: \`${r.command}\``);
  if (kept.length) {
    out.push(
      `- This run measured ${r.sections.map((s) => s.title.split(' ')[0]).join(', ')}; the other sections (${kept.map((k) => k.number + '.').join(', ')}) are kept as an earlier run measured them, each with its date under its heading, and the machine's load below is this run's.`,
    );
  }
  out.push(
    '- Every figure is the median of its measured runs (warm-up runs are discarded); its baseline is measured in the same `npm run bench`, interleaved run by run with it, on the same services. Ratio = median of the figure ÷ median of its baseline.',
  );
  out.push(
    '- Everything runs on the one machine below: the load generator, the code under test, Redis, the MongoDB-compatible server (FerretDB) and livekit-server share its cores. The per-run columns show how much the figures move from run to run.',
  );
  out.push('');
  out.push('## Machine');
  out.push('');
  out.push('| | |');
  out.push('| --- | --- |');
  out.push(`| CPU | ${r.machine.cpu} |`);
  out.push(`| Cores | ${r.machine.cores} |`);
  out.push(`| Memory | ${r.machine.memoryGiB.toFixed(1)} GiB |`);
  out.push(`| OS | ${r.machine.os} |`);
  out.push(`| Load average (1, 5, 15 min) at start | ${r.machine.loadAtStart} |`);
  if (r.machine.loadAtEnd) out.push(`| Load average (1, 5, 15 min) at end | ${r.machine.loadAtEnd} |`);
  out.push('');
  out.push('## Versions');
  out.push('');
  out.push('| Component | Version |');
  out.push('| --- | --- |');
  for (const [k, v] of r.versions) out.push(`| ${k} | ${v} |`);
  out.push('');
  out.push('## Summary');
  out.push('');
  const prev = (s: Section, f: Figure) => r.previous?.medians.get(key(s.title, f.name)) ?? '—';
  if (r.previous) {
    out.push(
      `"Previous" is the median the report of ${r.previous.date} gave for the same figure (— where it had none)${kept.length ? '; kept sections keep the rows they had' : ''}.`,
      '',
    );
  }
  out.push(`| Benchmark | Figure | Median | ${r.previous ? 'Previous | ' : ''}Baseline | Ratio | Target | Met |`);
  out.push(`| --- | --- | ---: | ${r.previous ? '---: | ' : ''}---: | ---: | --- | --- |`);
  for (const s of order) {
    if (isKept(s)) {
      out.push(...s.summaryRows);
      continue;
    }
    for (const f of s.figures) {
      const e = evaluate(f);
      out.push(
        `| ${s.title} | ${f.name} | ${fmt(e.value)} ${f.unit} | ${r.previous ? `${prev(s, f)} | ` : ''}${fmt(e.baseline)} ${f.baseline.unit} (${f.baseline.name}) | ${fmt(e.ratio)} | ${targetText(f)} | ${e.met === undefined ? '—' : e.met ? 'yes' : '**no**'} |`,
      );
    }
  }
  out.push('');
  for (const s of order) {
    if (isKept(s)) {
      out.push(s.block);
      continue;
    }
    out.push(`## ${s.title}`);
    out.push('');
    if (r.measured) {
      out.push(`Measured: ${r.measured}`);
      out.push('');
    }
    for (const p of s.method) {
      out.push(p);
      out.push('');
    }
    out.push(`| Figure | Runs | Median | ${r.previous ? 'Previous | ' : ''}Baseline | Baseline runs | Baseline median | Ratio | Target | Met |`);
    out.push(`| --- | --- | ---: | ${r.previous ? '---: | ' : ''}--- | --- | ---: | ---: | --- | --- |`);
    for (const f of s.figures) {
      const e = evaluate(f);
      out.push(
        `| ${f.name} | ${f.runs.map(fmt).join(', ')} | ${fmt(e.value)} ${f.unit} | ${r.previous ? `${prev(s, f)} | ` : ''}${f.baseline.name} | ${f.baseline.runs.map(fmt).join(', ')} | ${fmt(e.baseline)} ${f.baseline.unit} | ${fmt(e.ratio)} | ${targetText(f)} | ${e.met === undefined ? '—' : e.met ? 'yes' : '**no**'} |`,
      );
    }
    out.push('');
    if (s.notes?.length) {
      for (const n of s.notes) out.push(`- ${n}`);
      out.push('');
    }
    if (s.extra?.length) {
      out.push(...s.extra);
      out.push('');
    }
  }
  return out.join('\n');
}
