import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Layout } from '@fnn/shared';
import { runCli } from '../harness';
import { Collection, layoutsFor, PROTOCOLS, type ProtocolResult } from './point';
import { cpuSlug, duration, gitDescribe, machine, printReport, updateBenchmarksMd, writeJson, writeSvg, type BenchRun } from './report';

// `npm run bench`: the paper's Tables I/II on real MRI (data/, from `make
// dataset`), every protocol in one run on the same collection and queries.
// Image sizes run smallest first, so each protocol's cost at the next size and
// n can be estimated from its last measurement: what would not fit the budget
// is reported as not run, with the estimate, never extrapolated into a result.

const ROOT = resolve(__dirname, '..', '..', '..');

const USAGE = `usage: npm run bench -- [--quick] [--bits B] [--n 100,200,...] [--sizes 16,32,...] [--queries Q]
                          [--budget S] [--upload-budget S] [--total-budget S] [--protocols fast,fnn,bf]
       npm run bench -- --report bench/results/FILE.json   (only redraw the SVG and BENCHMARKS.md from a run)
  --quick           1024-bit keys, 16x16 and 32x32, n 4,8,16, 60 s budget, 480 s in all: under 10 minutes
  --budget          per protocol per point: the estimated time of its queries must fit (default 1800 s)
  --upload-budget   per image size and n: the estimated time of the upload must fit (default 3600 s)
  --total-budget    nothing starts whose estimate would end the run after this (default: no limit)`;

const DEFAULTS = {
  bits: 2048,
  n: [100, 200, 300, 400, 500],
  sizes: [16, 32, 64, 256],
  queries: 3,
  budget: 1800,
  uploadBudget: 3600,
  totalBudget: Infinity,
};
// Sized from measurements on 2 busy cores (~3.5 ms per pixel·record for fnn and bf at 1024 bits).
const QUICK = { bits: 1024, n: [4, 8, 16], sizes: [16, 32], queries: 3, budget: 60, uploadBudget: 60, totalBudget: 480 };

type Options = ReturnType<typeof options>;

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      bits: { type: 'string' },
      n: { type: 'string' },
      sizes: { type: 'string' },
      queries: { type: 'string' },
      budget: { type: 'string' },
      'upload-budget': { type: 'string' },
      'total-budget': { type: 'string' },
      protocols: { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const base = values.quick ? QUICK : DEFAULTS;
  const list = (s: string | undefined, fallback: number[]) => (s ? s.split(',').map(Number) : fallback);
  const o = {
    quick: values.quick!,
    bits: Number(values.bits ?? base.bits),
    n: list(values.n, base.n).sort((a, b) => a - b),
    sizes: list(values.sizes, base.sizes).sort((a, b) => a - b),
    queries: Number(values.queries ?? base.queries),
    budget: Number(values.budget ?? base.budget),
    uploadBudget: Number(values['upload-budget'] ?? base.uploadBudget),
    totalBudget: Number(values['total-budget'] ?? base.totalBudget),
    protocols: values.protocols ? values.protocols.split(',') : PROTOCOLS,
    report: values.report,
  };
  const finite = [...o.n, ...o.sizes, o.bits, o.queries, o.budget, o.uploadBudget];
  if (finite.some((v) => !(v > 0) || !Number.isFinite(v)) || !(o.totalBudget > 0))
    throw new Error(`every number must be positive\n${USAGE}`);
  return o;
}

interface Manifest {
  source: { package: string; file: string; sha256: string };
  derivation: string;
  sizes: number[];
  collection: string[];
  queries: string[];
}

function loadManifest(dataDir: string, sizes: number[]): Manifest {
  const path = join(dataDir, 'manifest.json');
  if (!existsSync(path)) throw new Error(`no benchmark collection at ${dataDir}: run \`make dataset\` first`);
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  const missing = sizes.filter((s) => !manifest.sizes.includes(s));
  if (missing.length) throw new Error(`the data set has sizes ${manifest.sizes.join(', ')}, not ${missing.join(', ')}`);
  return manifest;
}

/**
 * What may run. Each protocol's (and the upload's) cost per pixel·record comes
 * from its latest measurement and is scaled linearly by d·n: conservative for
 * anything whose cost grows more slowly. A protocol with no measurement yet
 * runs, held to the budget by the CLI's --timeout.
 */
class Budget {
  private readonly costs = new Map<string, { msPerUnit: number; at: string }>();
  /** Per layout: with the paper's per-pixel ciphertexts an upload costs ~8x more. */
  private readonly uploadMsPerPixel = new Map<string, number>(); // by the layouts uploaded;
  constructor(
    private readonly o: Options,
    private readonly started: number,
  ) {}

  private overTotal(ms: number) {
    return Date.now() - this.started + ms > this.o.totalBudget * 1000;
  }

  /** Why the protocol's queries at d, n must not run, or undefined. */
  refuseQueries(protocol: string, d: number, n: number): string | undefined {
    const cost = this.costs.get(protocol);
    if (!cost) return undefined;
    const perQuery = cost.msPerUnit * d * n;
    const all = perQuery * this.o.queries;
    if (all > this.o.budget * 1000)
      return `estimated ${duration(perQuery)} per query (from ${cost.at}) x ${this.o.queries} > ${this.o.budget} s budget`;
    if (this.overTotal(all)) return `its estimated ${duration(all)} would pass the run's ${this.o.totalBudget} s total budget`;
    return undefined;
  }

  queried(result: ProtocolResult, d: number, n: number, at: string) {
    if (result.medianMs !== undefined) this.costs.set(result.protocol, { msPerUnit: result.medianMs / (d * n), at });
    // Cut off at the budget: its queries took at least the budget, a lower bound on its cost.
    else if (result.status === 'failed')
      this.costs.set(result.protocol, { msPerUnit: (this.o.budget * 1000) / this.o.queries / (d * n), at: `${at}, where it was cut off` });
  }

  /** Why uploading `count` images of d pixels must not run, or undefined. */
  refuseUpload(d: number, count: number, layouts: Layout[]): string | undefined {
    const perPixel = this.uploadMsPerPixel.get(layouts.join());
    if (perPixel === undefined) return undefined;
    const ms = perPixel * d * count;
    if (ms > this.o.uploadBudget * 1000)
      return `uploading ${count} more images is estimated at ${duration(ms)} > ${this.o.uploadBudget} s upload budget`;
    if (this.overTotal(ms))
      return `uploading ${count} more images (estimated ${duration(ms)}) would pass the run's ${this.o.totalBudget} s total budget`;
    return undefined;
  }

  uploaded(ms: number, d: number, count: number, layouts: Layout[]) {
    this.uploadMsPerPixel.set(layouts.join(), ms / (d * count));
  }
}

async function bench(o: Options, started: number): Promise<BenchRun> {
  const dataDir = join(ROOT, 'data');
  const manifest = loadManifest(dataDir, o.sizes);
  const run: BenchRun = {
    date: new Date().toISOString(),
    code: gitDescribe(ROOT),
    quick: o.quick,
    bits: o.bits,
    machine: machine(),
    dataset: {
      source: `${manifest.source.package}, ${manifest.source.file}`,
      sha256: manifest.source.sha256,
      derivation: manifest.derivation,
      collection: manifest.collection.length,
      queries: manifest.queries.slice(0, o.queries),
    },
    settings: {
      n: o.n,
      sizes: o.sizes,
      queries: o.queries,
      budgetSeconds: o.budget,
      uploadBudgetSeconds: o.uploadBudget,
      totalBudgetSeconds: Number.isFinite(o.totalBudget) ? o.totalBudget : undefined,
      protocols: o.protocols,
    },
    points: [],
    notes: [],
    wallSeconds: 0,
  };
  const say = (line: string) => process.stdout.write(line + '\n');
  const note = (text: string) => {
    run.notes.push(text);
    say(`  note: ${text}`);
  };
  say(
    `bench: ${o.bits}-bit keys${o.quick ? ' (--quick)' : ''}, sizes ${o.sizes.join(', ')}, n ${o.n.join(', ')}, ${o.queries} queries, protocols ${o.protocols.join(', ')}`,
  );

  mkdirSync(join(ROOT, 'bench', 'work'), { recursive: true });
  const work = mkdtempSync(join(ROOT, 'bench', 'work', 'run-'));
  const keys = join(work, 'keys');
  const budget = new Budget(o, started);

  const unsupported = new Map<string, ProtocolResult>(); // noted once, then left out
  try {
    const keygen = await runCli(['keygen', '--out', keys, '--bits', String(o.bits), '--json']);
    if (keygen.code !== 0) throw new Error(`keygen failed: ${keygen.stderr.trim()}`);
    for (const size of o.sizes) {
      const d = size * size;
      const files = manifest.collection.map((f) => join(dataDir, `mri-${size}`, f));
      const queries = run.dataset.queries.map((f) => join(dataDir, `mri-${size}-queries`, f));
      const failed = new Set<string>(); // an error stops a protocol for the rest of this size
      let collection: Collection | undefined;
      try {
        // The paper's per-pixel layout (d encryptions per record) only where a paper protocol may still run.
        const layouts = layoutsFor(o.protocols.filter((p) => !budget.refuseQueries(p, d, o.n[0])));
        if (!layouts.includes('paper'))
          note(
            `${size}x${size}: uploaded without the paper's per-pixel layout (no paper protocol fits the budget here): the fast protocol's upload cost alone`,
          );
        collection = await Collection.start(size, keys, work, layouts);
        for (const n of o.n) {
          const tag = `${size}x${size} n=${n}`;
          const extra = files.slice(collection.count, n);
          const refused =
            n > files.length ? `the collection has only ${files.length} images` : budget.refuseUpload(d, extra.length, layouts);
          if (refused) {
            note(`${tag} and above not run: ${refused}`);
            break;
          }
          const upload = await collection.grow(extra);
          budget.uploaded(upload.seconds * 1000, d, extra.length, layouts);
          const plaintext = collection.plaintext(queries);
          say(`[${tag}] uploaded ${extra.length} (${upload.imagesPerSecond.toPrecision(3)} images/s); plaintext ${duration(plaintext.ms)}`);

          const protocols: ProtocolResult[] = [];
          for (const protocol of o.protocols) {
            const skip = (why: string): ProtocolResult => ({ protocol, status: 'skipped', note: why, searchMs: [], exact: 0 });
            let result = unsupported.get(protocol);
            if (!result) {
              const refusal = failed.has(protocol) ? 'it failed at a smaller n of this size' : budget.refuseQueries(protocol, d, n);
              result = refusal ? skip(refusal) : await collection.query(protocol, queries, plaintext.answers, o.budget * 1000);
              budget.queried(result, d, n, tag);
              if (result.status === 'failed') failed.add(protocol);
              if (result.status === 'unsupported') {
                unsupported.set(protocol, result);
                note(`${protocol}: ${result.note}, so it is left out of this run`);
              }
              const shown =
                result.medianMs !== undefined
                  ? `${duration(result.medianMs)} median, reject ${((result.rejectRatio ?? 0) * 100).toFixed(1)}%, exact ${result.exact}/${result.searchMs.length}`
                  : result.status;
              say(`  ${protocol}: ${shown}${result.note ? ` (${result.note})` : ''}`);
            }
            protocols.push(result);
          }
          run.points.push({ size, n, upload, ...collection.resources(), plaintextMs: plaintext.ms, protocols });
        }
      } catch (error) {
        // A daemon that dies or an upload that fails ends this size, not the run: keep what was measured.
        note(`${size}x${size} stopped: ${(error as Error).message}`);
      } finally {
        await collection?.stop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  run.wallSeconds = (Date.now() - started) / 1000;
  run.machine.loadAtEnd = loadavg()[0];
  return run;
}

/** The chart, BENCHMARKS.md and the printed tables, all from one run's record. */
function publish(run: BenchRun, jsonName: string) {
  const svgName = 'search-time.svg';
  writeSvg(run, join(ROOT, 'bench', 'results', svgName));
  updateBenchmarksMd(run, join(ROOT, 'docs', 'BENCHMARKS.md'), jsonName, svgName);
  printReport(run);
  process.stdout.write(
    `wrote bench/results/${jsonName}, bench/results/${svgName}, docs/BENCHMARKS.md; wall time ${duration(run.wallSeconds * 1000)}\n`,
  );
}

async function main() {
  const started = Date.now();
  const o = options();
  if (o.report) return publish(JSON.parse(readFileSync(o.report, 'utf8')) as BenchRun, basename(o.report));
  const run = await bench(o, started);
  const jsonName = `${run.date.slice(0, 10)}-${cpuSlug(run.machine)}-${run.machine.cores}c${o.quick ? '-quick' : ''}.json`;
  writeJson(run, join(ROOT, 'bench', 'results', jsonName));
  publish(run, jsonName);
}

main().catch((error) => {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
