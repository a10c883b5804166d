import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { PAPER_PROTOCOL, type PointResult } from './point';

// What a run produced, in four forms: the tables on the terminal, JSON under
// bench/results/ (the record), an SVG chart, and the generated section of
// docs/BENCHMARKS.md. All four come from the same BenchRun object.

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  node: string;
  kernel: string;
  /** 1-minute load averages when the run started and ended: other work on the machine slows every figure. */
  loadAtStart?: number;
  loadAtEnd?: number;
}

export interface BenchRun {
  date: string;
  /** `git describe --always --dirty` of the code measured. */
  code?: string;
  quick: boolean;
  bits: number;
  machine: Machine;
  dataset: { source: string; sha256: string; derivation: string; collection: number; queries: string[] };
  settings: {
    n: number[];
    sizes: number[];
    queries: number;
    budgetSeconds: number;
    uploadBudgetSeconds: number;
    totalBudgetSeconds?: number;
    protocols: string[];
  };
  points: PointResult[];
  /** Sizes or n the run stopped short of, and why. */
  notes: string[];
  wallSeconds: number;
}

/** Which code was measured (`git describe --always --dirty` in `cwd`): results are only comparable with it. */
export function gitDescribe(cwd: string): string | undefined {
  const git = spawnSync('git', ['describe', '--always', '--dirty'], { cwd, encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : undefined;
}

export function machine(): Machine {
  let cpu = 'unknown CPU';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].trim() ?? cpu;
  } catch {
    // not Linux: keep "unknown"
  }
  return {
    cpu,
    cores: availableParallelism(),
    ramGiB: totalmem() / 2 ** 30,
    node: process.version,
    kernel: release(),
    loadAtStart: loadavg()[0],
  };
}

/** The paper's Tables I and II (SCHEME.md): C implementation, Intel i7-7700, LIDC-IDRI CT; key size not stated. */
export const PAPER = {
  n: [100, 200, 300, 400, 500],
  tables: [
    {
      size: 512,
      lbMs: [549.7, 1121.4, 1650.8, 2148.8, 2674.4],
      reject: [39.0, 38.5, 42.0, 40.3, 40.8],
      hours: [6.39, 12.76, 17.93, 24.66, 30.44],
    },
    {
      size: 256,
      lbMs: [554.9, 1098.5, 1646.4, 2195.6, 2745.1],
      reject: [31.0, 31.0, 35.7, 38.3, 42.4],
      hours: [1.78, 3.54, 4.95, 6.33, 7.47],
    },
  ],
};

// ---- formatting ----

export function duration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 0.001) return `${(ms * 1e6).toPrecision(3)} ns`;
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toPrecision(3)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toPrecision(3)} min`;
  return `${(ms / 3_600_000).toPrecision(3)} h`;
}
const percent = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
export const mib = (bytes: number) => (bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`);
const ratio = (x: number) => x.toLocaleString('en-US', { maximumSignificantDigits: 3 });
/** Time per pixel per record searched: the unit that compares sizes, n and the paper. */
const perPixelRecord = (ms: number, size: number, n: number) => duration(ms / (size * size * n));
const paperPerPixelRecord = (hours: number, size: number, n: number) => duration((hours * 3_600_000) / (size * size * n));

export type Table = { head: string[]; rows: string[][] };

/**
 * One table per image size, laid out like the paper's Tables I/II (a column
 * per n, a row per figure), with every protocol, the plaintext floor, the
 * ratios between them (same images, queries and daemons) and the resources.
 * A protocol that was not run at some n gets a numbered footnote saying why.
 */
function sizeTables(run: BenchRun): { size: number; table: Table; footnotes: string[] }[] {
  const sizes = [...new Set(run.points.map((p) => p.size))];
  return sizes.map((size) => {
    const points = run.points.filter((p) => p.size === size);
    const footnotes: string[] = [];
    const names = [...new Set(points.flatMap((p) => p.protocols.filter((r) => r.status !== 'unsupported').map((r) => r.protocol)))];
    const measured = names.filter((x) => points.some((p) => find(p, x)?.medianMs !== undefined));
    const row = (label: string, cell: (p: PointResult) => string) => [label, ...points.map(cell)];
    const rows: string[][] = [];
    for (const name of names) {
      rows.push(row(`${name}: LB time`, (p) => duration(find(p, name)?.lowerBoundMs)));
      rows.push(row(`${name}: reject ratio`, (p) => percent(find(p, name)?.rejectRatio)));
      rows.push(
        row(`${name}: search time`, (p) => {
          const r = find(p, name);
          if (r?.note) footnotes.push(`${name}, n = ${p.n}: ${r.note}`);
          const mark = r?.note ? ` (${footnotes.length})` : '';
          return r?.medianMs !== undefined ? `${duration(r.medianMs)}${mark}` : `not run${mark}`;
        }),
      );
      rows.push(
        row(`${name}: exact answers`, (p) =>
          find(p, name)?.searchMs.length ? `${find(p, name)!.exact}/${find(p, name)!.searchMs.length}` : '-',
        ),
      );
    }
    rows.push(row('plaintext: search time', (p) => duration(p.plaintextMs)));
    const time = (p: PointResult, name: string) => find(p, name)?.medianMs;
    const quotient = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? ratio(a / b) : '-');
    for (const other of measured.filter((x) => x !== PAPER_PROTOCOL))
      if (measured.includes(PAPER_PROTOCOL))
        rows.push(row(`ratio ${PAPER_PROTOCOL} ÷ ${other}`, (p) => quotient(time(p, PAPER_PROTOCOL), time(p, other))));
    for (const name of measured) rows.push(row(`ratio ${name} ÷ plaintext`, (p) => quotient(time(p, name), p.plaintextMs)));
    rows.push(row('upload rate', (p) => `${p.upload.imagesPerSecond.toPrecision(3)} images/s`));
    rows.push(row('C1 peak RSS', (p) => mib(p.peakRss.c1)));
    rows.push(row('C2 peak RSS', (p) => mib(p.peakRss.c2)));
    rows.push(row('C1 database', (p) => mib(p.databaseBytes.c1)));
    if (points.some((p) => p.databaseBytes.c2 > 0)) rows.push(row('C2 database', (p) => mib(p.databaseBytes.c2)));
    const head = [`${size}x${size} (d = ${size * size})`, ...points.map((p) => `n = ${p.n}`)];
    return { size, table: { head, rows }, footnotes };
  });
}

const find = (p: PointResult, name: string) => p.protocols.find((r) => r.protocol === name);

/** The paper's rows and this run's rows, in one set of columns. */
function paperTable(run: BenchRun): Table {
  const head = ['source', 'image', 'n', 'LB time', 'reject ratio', 'search time', 'per pixel·record'];
  const rows: string[][] = [];
  for (const t of PAPER.tables)
    PAPER.n.forEach((n, i) =>
      rows.push([
        'paper (C, i7-7700)',
        `${t.size}x${t.size}`,
        String(n),
        duration(t.lbMs[i]),
        `${t.reject[i].toFixed(1)}%`,
        duration(t.hours[i] * 3_600_000),
        paperPerPixelRecord(t.hours[i], t.size, n),
      ]),
    );
  for (const p of run.points)
    for (const r of p.protocols)
      if (r.medianMs !== undefined)
        rows.push([
          `this run: ${r.protocol}, ${run.bits}-bit`,
          `${p.size}x${p.size}`,
          String(p.n),
          duration(r.lowerBoundMs),
          percent(r.rejectRatio),
          duration(r.medianMs),
          perPixelRecord(r.medianMs, p.size, p.n),
        ]);
  return { head, rows };
}

export function text({ head, rows }: Table): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function markdown({ head, rows }: Table): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The headline: the largest point where the paper's protocol ran, and each other protocol's speed-up there. */
function headline(run: BenchRun): string {
  const ran = run.points.filter((p) => find(p, PAPER_PROTOCOL)?.medianMs !== undefined);
  if (!ran.length) return `The paper's protocol (${PAPER_PROTOCOL}) did not run.`;
  const p = ran.reduce((a, b) => (b.size * b.size * b.n > a.size * a.size * a.n ? b : a));
  const paper = find(p, PAPER_PROTOCOL)!.medianMs!;
  const others = p.protocols.filter((r) => r.protocol !== PAPER_PROTOCOL && r.medianMs !== undefined);
  const speedups = others.map(
    (r) => `${r.protocol} ${duration(r.medianMs)} (${PAPER_PROTOCOL} ÷ ${r.protocol} = ${ratio(paper / r.medianMs!)})`,
  );
  return `Largest point the paper's protocol finished: ${p.size}x${p.size}, n = ${p.n}: ${PAPER_PROTOCOL} ${duration(paper)}${speedups.length ? `; ${speedups.join('; ')}` : ''}; plaintext ${duration(p.plaintextMs)}.`;
}

function summary(run: BenchRun): string[] {
  const m = run.machine;
  return [
    `Date: ${run.date.slice(0, 10)}; code ${run.code ?? 'unknown'}; wall time of the run: ${duration(run.wallSeconds * 1000)}${run.quick ? ' (`--quick`)' : ''}.`,
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB RAM; Node ${m.node}, Linux ${m.kernel}${m.loadAtStart === undefined ? '' : `; load average ${m.loadAtStart.toFixed(2)} at the start`}${m.loadAtEnd === undefined ? '' : `, ${m.loadAtEnd.toFixed(2)} at the end`}. Both daemons and the client on this one machine, over gRPC on localhost.`,
    `Keys: ${run.bits}-bit Paillier${run.bits === 2048 ? '' : ` (${run.quick ? '--quick: ' : ''}smaller than the default 2048, so every encrypted time here is lower than at 2048 bits)`}. The paper does not state its key size.`,
    `Data: the first n of ${run.dataset.collection} real MRI slices (${run.dataset.source}); ${run.settings.queries} held-out query slices (${run.dataset.queries.join(', ')}); median over the queries.`,
    `Budget: a protocol runs at a point only if its estimated time for the queries (its previous measured time per pixel·record, times d·n) is within ${run.settings.budgetSeconds} s; an image size grows only while the next upload is estimated within ${run.settings.uploadBudgetSeconds} s${run.settings.totalBudgetSeconds ? `; nothing starts that would end the run after ${run.settings.totalBudgetSeconds} s` : ''}. Footnotes of "not run" cells give the estimate; nothing is extrapolated into the tables.`,
    headline(run),
  ];
}

export function printReport(run: BenchRun): void {
  const out = ['', ...summary(run)];
  for (const { table, footnotes } of sizeTables(run)) out.push('', text(table), ...footnotes.map((f, i) => `  (${i + 1}) ${f}`));
  out.push('', ...run.notes.map((n) => `note: ${n}`), '');
  process.stdout.write(out.join('\n') + '\n');
}

export function writeJson(run: BenchRun, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(run, null, 2) + '\n');
}

export const START = '<!-- bench:start -->';
export const END = '<!-- bench:end -->';

/** Replace the generated section of BENCHMARKS.md (between the markers); the rest is hand-written. */
export function updateBenchmarksMd(run: BenchRun, path: string, jsonName: string, svgName: string): void {
  const section = [
    START,
    `<!-- generated by \`npm run bench${run.quick ? ' -- --quick' : ''}\`: edits between these markers are overwritten -->`,
    '',
    ...summary(run).map((s) => `- ${s}`),
    `- Raw results: [bench/results/${jsonName}](../bench/results/${jsonName}); chart: [bench/results/${svgName}](../bench/results/${svgName}).`,
    '',
    '### Search time, reject ratio, lower-bound time, ratios, resources',
    '',
    'Search time: one query end to end at the client (encrypt the query, the protocol between C1 and C2, retrieve and decrypt the answer), median over the queries. LB time: only where the protocol reports its lower-bound stage. Exact answers: equal to the plaintext nearest neighbour (ID and distance). Plaintext: the same search in-process on the decrypted images, the floor. Ratios: of median search times at the same point. Upload rate: the images added at that n. Peak RSS: VmHWM of each daemon process after the queries at that n (the peak so far for that image size).',
    ...sizeTables(run).flatMap(({ table, footnotes }) => [
      '',
      markdown(table),
      ...(footnotes.length ? ['', ...footnotes.map((f, i) => `(${i + 1}) ${f}  `)] : []),
    ]),
    '',
    `![search time vs n](../bench/results/${svgName})`,
    '',
    "### The paper's figures beside ours",
    '',
    "The paper's times are its FNN in C on LIDC-IDRI CT on an i7-7700 (key size not stated); ours are every protocol of this run on MRI slices. Per pixel·record (search time ÷ (d·n)) is the unit that compares image sizes and n; this run's images are smaller than the paper's wherever a protocol would not fit the budget at 256x256.",
    '',
    markdown(paperTable(run)),
    ...(run.notes.length ? ['', '### Where the run stopped short', '', ...run.notes.map((n) => `- ${n}`)] : []),
    '',
    END,
  ].join('\n');
  replaceSection(path, START, END, section);
}

/**
 * Put `section` (which starts with `start` and ends with `end`) in place of
 * the file's text between those markers, or at its end (under `heading`, if
 * given) when it has none yet.
 */
export function replaceSection(path: string, start: string, end: string, section: string, heading?: string): void {
  const current = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\n';
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const next =
    from >= 0 && to > from
      ? current.slice(0, from) + section + current.slice(to + end.length)
      : `${current.trimEnd()}\n\n${heading ? `${heading}\n\n` : ''}${section}\n`;
  writeFileSync(path, next);
}

/** The CPU's model as a file-name part: "Intel(R) Xeon(R) CPU @ 2.20GHz" -> "intel-xeon". */
export function cpuSlug(m: Machine): string {
  return m.cpu
    .toLowerCase()
    .replace(/\(r\)|\(tm\)|cpu|processor|@.*$/g, '')
    .trim()
    .replace(/[^a-z0-9]+/g, '-');
}

// ---- SVG: search time vs n, log scale, one line per protocol and image size ----

const COLOURS: Record<string, string> = { fast: '#1b9e77', fnn: '#d95f02', bf: '#7570b3', plaintext: '#666666' };
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

export function writeSvg(run: BenchRun, path: string): void {
  const series: ChartSeries[] = [];
  const sizes = [...new Set(run.points.map((p) => p.size))];
  for (const [si, size] of sizes.entries()) {
    const at = run.points.filter((p) => p.size === size);
    const names = [...new Set(at.flatMap((p) => p.protocols.filter((r) => r.medianMs !== undefined).map((r) => r.protocol))), 'plaintext'];
    for (const [ni, name] of names.entries()) {
      const points = at
        .map((p): [number, number | undefined] => [p.n, name === 'plaintext' ? p.plaintextMs : find(p, name)?.medianMs])
        .filter((xy): xy is [number, number] => xy[1] !== undefined && xy[1] > 0);
      if (points.length) series.push({ label: `${name} ${size}x${size}`, colour: seriesColour(name, ni), dash: seriesDash(si), points });
    }
  }
  const title = `Search time vs n (median of ${run.settings.queries} queries, ${run.bits}-bit keys, log scale) — ${run.machine.cpu}, ${run.date.slice(0, 10)}`;
  const svg = lineChart({ title, xLabel: 'n (records searched)', xTicks: [...new Set(run.points.map((p) => p.n))], series });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg);
}

export interface ChartSeries {
  label: string;
  colour: string;
  dash: string;
  /** (n, ms), ms > 0. */
  points: [number, number][];
}

/** A protocol's colour in every chart (plaintext grey); others by their index. */
export const seriesColour = (name: string, index: number) => COLOURS[name] ?? `hsl(${index * 67}, 60%, 40%)`;
/** One dash pattern per image size. */
export const seriesDash = (sizeIndex: number) => DASHES[sizeIndex % DASHES.length];

/** Time (ms, log scale) against n (linear, or log with `logX`), one line per series, as SVG text. */
export function lineChart(o: { title: string; xLabel: string; xTicks: number[]; series: ChartSeries[]; logX?: boolean }): string {
  const { series } = o;
  const W = 760,
    H = 440,
    left = 70,
    right = 190,
    top = 40,
    bottom = 50;
  const all = series.flatMap((s) => s.points);
  const maxN = Math.max(1, ...all.map(([n]) => n));
  const minN = Math.min(maxN, ...all.map(([n]) => n));
  const lo = Math.floor(Math.log10(Math.min(...all.map(([, t]) => t), 1)));
  const hi = Math.ceil(Math.log10(Math.max(...all.map(([, t]) => t), 10)));
  // Log x: the smallest n a little right of the axis, the largest at the right edge.
  const span = Math.log10(maxN) - Math.log10(minN) || 1;
  const x = o.logX
    ? (n: number) => left + (W - left - right) * (0.05 + (0.95 * (Math.log10(n) - Math.log10(minN))) / span)
    : (n: number) => left + ((W - left - right) * n) / maxN;
  const y = (ms: number) => top + ((H - top - bottom) * (hi - Math.log10(ms))) / Math.max(1, hi - lo);
  const unit = (e: number, shift: number, name: string) => `${Number((10 ** (e + shift)).toPrecision(1))} ${name}`;
  const label = (e: number) => (e >= 3 ? unit(e, -3, 's') : e >= 0 ? unit(e, 0, 'ms') : e >= -3 ? unit(e, 3, 'µs') : unit(e, 6, 'ns'));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">${escapeXml(o.title)}</text>`,
  ];
  for (let e = lo; e <= hi; e++) {
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(10 ** e) + 4}" text-anchor="end">${label(e)}</text>`);
  }
  for (const n of o.xTicks) {
    parts.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${H - bottom}" y2="${H - bottom + 5}" stroke="#333"/>`);
    parts.push(`<text x="${x(n)}" y="${H - bottom + 18}" text-anchor="middle">${n}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="#333"/>`);
  parts.push(`<text x="${(left + W - right) / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  series.forEach((s, i) => {
    const d = s.points.map(([n, t], j) => `${j ? 'L' : 'M'}${x(n).toFixed(1)},${y(t).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2" stroke-dasharray="${s.dash}"/>`);
    for (const [n, t] of s.points) parts.push(`<circle cx="${x(n).toFixed(1)}" cy="${y(t).toFixed(1)}" r="3" fill="${s.colour}"/>`);
    const ly = top + 10 + i * 18;
    parts.push(
      `<line x1="${W - right + 15}" x2="${W - right + 45}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="2" stroke-dasharray="${s.dash}"/>`,
    );
    parts.push(`<text x="${W - right + 52}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
