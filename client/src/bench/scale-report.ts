import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { growthExponent, type Growth } from './growth';
import {
  duration,
  lineChart,
  markdown,
  mib,
  replaceSection,
  seriesColour,
  seriesDash,
  text,
  type ChartSeries,
  type Machine,
  type Table,
} from './report';
import { PROBE_IMAGES } from './scale-plan';
import type { ScalePoint } from './scale-point';
import { REMAINDER, type Stage } from './stages';
import { evaluateTargets, type MeasuredPoint, type TargetResult } from './targets';

// A scale run in the forms of report.ts: tables on the terminal, JSON under
// bench/results/, a log-log chart, and the section of docs/BENCHMARKS.md
// between the scale markers. All from the same ScaleRun.

export interface ScaleRun {
  date: string;
  code?: string;
  quick: boolean;
  bits: number;
  machine: Machine;
  /** 10^8 JavaScript additions, ms, at the start and the end of the run. */
  speedCheckMs: { start: number; end?: number };
  dataset: { source: string; derivation: string; images: Record<number, number>; queries: Record<number, string[]> };
  settings: { sizes: number[]; n: Record<number, number[]>; queries: number; uploadBudgetSeconds: number; queryTimeoutSeconds: number };
  points: ScalePoint[];
  /** Points left out, and why. */
  skipped: { size: number; n: number; why: string }[];
  notes: string[];
  wallSeconds: number;
}

/** Points that are measurements: every query answered, exactly. */
export const measured = (run: ScaleRun) => run.points.filter((p) => p.error === undefined && p.medianMs !== undefined);

export function fits(run: ScaleRun): { size: number; growth?: Growth }[] {
  return run.settings.sizes.map((size) => ({
    size,
    growth: growthExponent(
      measured(run)
        .filter((p) => p.size === size)
        .map((p) => ({ n: p.n, ms: p.medianMs! })),
    ),
  }));
}

export function targets(run: ScaleRun): TargetResult[] {
  const points: MeasuredPoint[] = measured(run).map((p) => ({
    size: p.size,
    n: p.n,
    queryMs: p.medianMs!,
    plaintextMs: p.plaintextMs,
    upload: { images: p.upload.images, seconds: p.upload.seconds },
    bytesPerImage: p.bytesPerImage,
    queryRss: p.peakRss.query,
  }));
  const checks = [run.speedCheckMs.start, run.speedCheckMs.end].filter((x): x is number => x !== undefined);
  return evaluateTargets(points, checks.length ? Math.min(...checks) : undefined);
}

const ratio = (x: number) => x.toLocaleString('en-US', { maximumSignificantDigits: 3 });
const mb = (bytes: number) => `${(bytes / 1e6).toPrecision(3)} MB`;

function visited(s: Stage | undefined): string {
  if (!s) return '-';
  const parts = [
    s.groups !== undefined ? `${s.groups} groups` : '',
    s.records !== undefined ? `${s.records} records` : '',
    s.rejected !== undefined ? `${s.rejected} records rejected` : '',
    s.pruned !== undefined ? `${s.pruned} groups pruned` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : '-';
}

/** One table per image size: a column per n, a row per figure; every stage the stats name gets its rows. */
export function scaleTables(run: ScaleRun): { size: number; table: Table; footnotes: string[] }[] {
  return run.settings.sizes.flatMap((size) => {
    const points = run.points.filter((p) => p.size === size);
    if (!points.length) return [];
    const footnotes: string[] = [];
    const row = (label: string, cell: (p: ScalePoint) => string) => [label, ...points.map(cell)];
    const stageNames = [...new Set(points.flatMap((p) => p.stages.map((s) => s.name)))];
    const stage = (p: ScalePoint, name: string) => p.stages.find((s) => s.name === name);
    const rows: string[][] = [
      row('query time (median)', (p) => {
        if (p.error) footnotes.push(`n = ${p.n}: ${p.error}`);
        return p.medianMs !== undefined ? duration(p.medianMs) : `error (${footnotes.length})`;
      }),
      row('exact answers', (p) => `${p.queries.filter((q) => q.exact).length}/${p.queries.length}`),
      ...stageNames.flatMap((name) => {
        const label = name === REMAINDER ? 'remainder (what no stage above names)' : `stage ${name}`;
        return [row(`${label}: time`, (p) => duration(stage(p, name)?.ms)), row(`${label}: visited`, (p) => visited(stage(p, name)))];
      }),
      row('plaintext brute force', (p) => duration(p.plaintextMs)),
      row('ratio ÷ plaintext', (p) => (p.medianMs !== undefined ? ratio(p.medianMs / p.plaintextMs) : '-')),
      row('upload rate (extra records)', (p) => `${p.upload.imagesPerSecond.toPrecision(3)} images/s (${p.upload.images})`),
      row('C1 bytes per image', (p) => mb(p.bytesPerImage.c1) + (p.stored.c1.busy ? ' *' : '')),
      row('C2 bytes per image', (p) => mb(p.bytesPerImage.c2) + (p.stored.c2.busy ? ' *' : '')),
      row('C1 peak RSS: upload / queries', (p) => `${mib(p.peakRss.upload.c1)} / ${mib(p.peakRss.query.c1)}`),
      row('C2 peak RSS: upload / queries', (p) => `${mib(p.peakRss.upload.c2)} / ${mib(p.peakRss.query.c2)}`),
    ];
    if (points.some((p) => p.stored.c1.busy || p.stored.c2.busy))
      footnotes.push('*: the checkpoint left part of the WAL (a reader held it); counted');
    if (points.some((p) => !p.peakRss.separated))
      footnotes.push('peak RSS: /proc would not reset the peak, so both figures are the peak since the daemons started');
    const head = [`${size}x${size} (d = ${size * size})`, ...points.map((p) => `n = ${p.n}`)];
    return [{ size, table: { head, rows }, footnotes }];
  });
}

function targetsTable(run: ScaleRun): Table {
  return {
    head: ['target (issue 11)', 'measured', 'verdict'],
    rows: targets(run).map((t) => [t.target, t.measured + (t.caveat ? `; ${t.caveat}` : ''), t.verdict]),
  };
}

function fitLines(run: ScaleRun): string[] {
  return fits(run).map(({ size, growth }) =>
    growth
      ? `${size}x${size}: query time ~ n^${growth.exponent.toFixed(2)} (least squares on log-log over n = ${growth.n.join(', ')}; R² ${growth.r2.toFixed(3)})`
      : `${size}x${size}: no growth exponent (fewer than two measured n)`,
  );
}

function summary(run: ScaleRun): string[] {
  const m = run.machine;
  const speed = `speed check (\`node -e\`, 10^8 additions) ${duration(run.speedCheckMs.start)} at the start${run.speedCheckMs.end === undefined ? '' : `, ${duration(run.speedCheckMs.end)} at the end`}`;
  return [
    `Date: ${run.date.slice(0, 10)}; code ${run.code ?? 'unknown'}; wall time ${duration(run.wallSeconds * 1000)}${run.quick ? ' (`--quick`)' : ''}.`,
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB RAM; Node ${m.node}, Linux ${m.kernel}${m.loadAtStart === undefined ? '' : `; load average ${m.loadAtStart.toFixed(2)} at the start`}${m.loadAtEnd === undefined ? '' : `, ${m.loadAtEnd.toFixed(2)} at the end`}; ${speed}. Both daemons and the client on this machine, over gRPC on localhost.`,
    `Protocol fast, ${run.bits}-bit Paillier keys${run.bits === 2048 ? '' : " (smaller than the targets' 2048: every encrypted time is lower)"}.`,
    `Data: the scale collection of \`make dataset\` (${run.dataset.source}; ${Object.entries(run.dataset.images)
      .map(([s, c]) => `${c} images at ${s}x${s}`)
      .join(
        ', ',
      )}), uploaded in its manifest's order, n grown by uploading only the extra records; ${run.settings.queries} held-out queries per size (both kinds, spread through the manifest's list), median over them. Every answer checked against the plaintext nearest neighbour of the first n images.`,
    `Budget: a point runs only if its upload, estimated from the upload rate measured at that size (the first ${PROBE_IMAGES} images of a size are uploaded alone to measure it), fits ${run.settings.uploadBudgetSeconds} s, and its estimated bytes fit the free disk; a query is cut off after ${run.settings.queryTimeoutSeconds} s. What was left out is listed with the reason; nothing is extrapolated.`,
  ];
}

export function printScaleReport(run: ScaleRun): void {
  const out = ['', ...summary(run)];
  for (const { table, footnotes } of scaleTables(run)) out.push('', text(table), ...footnotes.map((f, i) => `  (${i + 1}) ${f}`));
  out.push('', ...fitLines(run), '', text(targetsTable(run)));
  out.push('', ...run.skipped.map((s) => `left out: ${s.size}x${s.size} n = ${s.n}: ${s.why}`), ...run.notes.map((n) => `note: ${n}`), '');
  process.stdout.write(out.join('\n') + '\n');
}

export function writeScaleJson(run: ScaleRun, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(run, null, 2) + '\n');
}

/** Query time against n, both axes log, fast and plaintext per image size. */
export function writeScaleSvg(run: ScaleRun, path: string): void {
  const series: ChartSeries[] = [];
  for (const [si, size] of run.settings.sizes.entries()) {
    const at = measured(run).filter((p) => p.size === size);
    if (!at.length) continue;
    series.push({
      label: `fast ${size}x${size}`,
      colour: seriesColour('fast', 0),
      dash: seriesDash(si),
      points: at.map((p) => [p.n, p.medianMs!]),
    });
    series.push({
      label: `plaintext ${size}x${size}`,
      colour: seriesColour('plaintext', 1),
      dash: seriesDash(si),
      points: at.filter((p) => p.plaintextMs > 0).map((p) => [p.n, p.plaintextMs]),
    });
  }
  const svg = lineChart({
    title: `Query time vs n, log-log (median of ${run.settings.queries}, ${run.bits}-bit keys) — ${run.machine.cpu}, ${run.date.slice(0, 10)}`,
    xLabel: 'n (records searched, log scale)',
    xTicks: [...new Set(measured(run).map((p) => p.n))].sort((a, b) => a - b),
    series,
    logX: true,
  });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg);
}

export const SCALE_START = '<!-- scale:start -->';
export const SCALE_END = '<!-- scale:end -->';

export function updateScaleSection(run: ScaleRun, path: string, jsonName: string, svgName: string): void {
  const section = [
    SCALE_START,
    `<!-- generated by \`npm run bench:scale${run.quick ? ' -- --quick' : ''}\`: edits between these markers are overwritten -->`,
    '',
    ...summary(run).map((s) => `- ${s}`),
    `- Raw results: [bench/results/${jsonName}](../bench/results/${jsonName}); chart: [bench/results/${svgName}](../bench/results/${svgName}).`,
    '',
    '### Per point: query time by stage, what each stage visited, resources',
    '',
    "Query time: `fnn query --json`'s `elapsedMs`, one query alone on the machine. Stage rows: medians over the queries of the time and counts each stage of the reply's stats reports (with today's stats one bound stage over all records, with how many it rejected; with a cascade, each level with the groups it visited and pruned and the records it visited); \"remainder\" is the query time no stage names (with today's stats the distances of the surviving groups, over the records no bound rejected; always the result and the doctor's encryption and decryption). Each figure is its own median, so the rows need not add up. Bytes per image: each daemon's SQLite file and WAL after a checkpoint, divided by n. Peak RSS: VmHWM of each daemon process during that point's upload and during its queries (reset to the current RSS before each).",
    ...scaleTables(run).flatMap(({ table, footnotes }) => [
      '',
      markdown(table),
      ...(footnotes.length ? ['', ...footnotes.map((f, i) => `(${i + 1}) ${f}  `)] : []),
    ]),
    '',
    '### Growth of query time with n',
    '',
    ...fitLines(run).map((l) => `- ${l}`),
    '',
    `![query time vs n, log-log](../bench/results/${svgName})`,
    '',
    "### Issue 11's targets, from this run's measured points",
    '',
    markdown(targetsTable(run)),
    ...(run.skipped.length || run.notes.length
      ? [
          '',
          '### Left out',
          '',
          ...run.skipped.map((s) => `- ${s.size}x${s.size}, n = ${s.n}: ${s.why}`),
          ...run.notes.map((n) => `- ${n}`),
        ]
      : []),
    '',
    SCALE_END,
  ].join('\n');
  replaceSection(path, SCALE_START, SCALE_END, section, '## Archive scale (issue 11)');
}
