import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runCli } from '../harness';
import { Collection } from './point';
import { cpuSlug, duration, gitDescribe, machine } from './report';
import { nPerSize, PROBE_IMAGES, spreadByKind, uploadRefusal } from './scale-plan';
import { measurePoint, type QueryFile, type ScalePoint } from './scale-point';
import { printScaleReport, updateScaleSection, writeScaleJson, writeScaleSvg, type ScaleRun } from './scale-report';
import { freeBytes, speedCheckMs } from './scale-resources';

// `npm run bench:scale`: issue 11's archive-scale benchmark. The fast
// protocol over the real CLI and daemons on the scale collection of `make
// dataset` (data/scale/), n grown per image size by uploading only the extra
// records, every answer checked; the time split by the stages the reply's
// stats name. What would not fit the upload budget or the disk is left out
// and says why.

const ROOT = resolve(__dirname, '..', '..', '..');
const DATA = join(ROOT, 'data', 'scale');

const USAGE = `usage: npm run bench:scale -- [--quick] [--bits B] [--sizes 64,256] [--n 1000,2000,...] [--queries Q]
                                [--upload-budget S] [--query-timeout S]
       npm run bench:scale -- --report bench/results/scale-FILE.json   (only redraw the chart and BENCHMARKS.md)
  --n               the same n for every size (default: 1000, 2000, 5000, 10000 at 64x64; 500, 1000, 2000 at 256x256)
  --queries         held-out queries per size, at least 3 (default 3)
  --upload-budget   a point runs only if its upload is estimated within S seconds (default 3600)
  --query-timeout   each query is cut off after S seconds, which fails the point (default 1800)
  --quick           1024-bit keys, 64x64, n = 100, 200: a few minutes`;

const DEFAULTS = { bits: 2048, sizes: [64, 256], n: undefined as number[] | undefined, queries: 3, uploadBudget: 3600, queryTimeout: 1800 };
const QUICK = { bits: 1024, sizes: [64], n: [100, 200], queries: 3, uploadBudget: 600, queryTimeout: 300 };
const MAX_N = 1_000_000;

type Options = ReturnType<typeof options>;

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      bits: { type: 'string' },
      sizes: { type: 'string' },
      n: { type: 'string' },
      queries: { type: 'string' },
      'upload-budget': { type: 'string' },
      'query-timeout': { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const base = values.quick ? QUICK : DEFAULTS;
  const list = (s: string | undefined) => s?.split(',').map(Number);
  const o = {
    quick: values.quick!,
    bits: Number(values.bits ?? base.bits),
    sizes: [...new Set(list(values.sizes) ?? base.sizes)].sort((a, b) => a - b),
    n: list(values.n) ?? base.n,
    queries: Number(values.queries ?? base.queries),
    uploadBudget: Number(values['upload-budget'] ?? base.uploadBudget),
    queryTimeout: Number(values['query-timeout'] ?? base.queryTimeout),
    report: values.report,
  };
  const whole = (v: number) => Number.isInteger(v) && v > 0;
  if (![o.bits, ...o.sizes, ...(o.n ?? [])].every(whole)) throw new Error(`--bits, --sizes and --n take positive whole numbers\n${USAGE}`);
  if (o.n?.some((n) => n > MAX_N)) throw new Error(`--n is at most ${MAX_N}`);
  if (!Number.isInteger(o.queries) || o.queries < 3)
    throw new Error('--queries must be a whole number of at least 3: a median of fewer is no measurement');
  if (!(o.uploadBudget > 0) || !(o.queryTimeout > 0) || !Number.isFinite(o.uploadBudget) || !Number.isFinite(o.queryTimeout))
    throw new Error(`--upload-budget and --query-timeout take a positive number of seconds\n${USAGE}`);
  return { ...o, nBySize: nPerSize(o.sizes, o.n) };
}

interface ScaleManifest {
  source: { package: string };
  derivation: string;
  sizes: Record<string, { collection: { file: string }[]; queries: { file: string; kind: string }[] }>;
}

function loadManifest(sizes: number[]): ScaleManifest {
  const path = join(DATA, 'manifest.json');
  if (!existsSync(path)) throw new Error(`no scale collection at ${DATA}: run \`make dataset\` first`);
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as ScaleManifest;
  const missing = sizes.filter((s) => !manifest.sizes[s]);
  if (missing.length)
    throw new Error(`the scale collection has sizes ${Object.keys(manifest.sizes).join(', ')}, not ${missing.join(', ')}`);
  return manifest;
}

async function bench(o: Options, started: number): Promise<ScaleRun> {
  const manifest = loadManifest(o.sizes);
  const say = (line: string) => process.stdout.write(line + '\n');
  const chosen = new Map<number, QueryFile[]>();
  for (const size of o.sizes) {
    const all = manifest.sizes[size].queries;
    if (all.length < o.queries) throw new Error(`the scale collection has ${all.length} queries at ${size}x${size}, not ${o.queries}`);
    chosen.set(
      size,
      spreadByKind(all, o.queries, (q) => q.kind).map((q) => ({ path: join(DATA, `queries-${size}`, q.file), kind: q.kind })),
    );
  }
  say(`bench:scale: speed check...`);
  const run: ScaleRun = {
    date: new Date().toISOString(),
    code: gitDescribe(ROOT),
    quick: o.quick,
    bits: o.bits,
    machine: machine(),
    speedCheckMs: { start: speedCheckMs() },
    dataset: {
      source: manifest.source.package,
      derivation: manifest.derivation,
      images: Object.fromEntries(o.sizes.map((s) => [s, manifest.sizes[s].collection.length])),
      queries: Object.fromEntries(o.sizes.map((s) => [s, chosen.get(s)!.map((q) => basename(q.path))])),
    },
    settings: {
      sizes: o.sizes,
      n: Object.fromEntries(o.nBySize),
      queries: o.queries,
      uploadBudgetSeconds: o.uploadBudget,
      queryTimeoutSeconds: o.queryTimeout,
    },
    points: [],
    skipped: [],
    notes: [],
    wallSeconds: 0,
  };
  say(
    `bench:scale: fast, ${o.bits}-bit keys${o.quick ? ' (--quick)' : ''}, ${o.sizes.map((s) => `${s}x${s} n ${o.nBySize.get(s)!.join(', ')}`).join('; ')}, ${o.queries} queries; speed check ${duration(run.speedCheckMs.start)}`,
  );

  mkdirSync(join(ROOT, 'bench', 'work'), { recursive: true });
  const work = mkdtempSync(join(ROOT, 'bench', 'work', 'scale-'));
  const keys = join(work, 'keys');
  const skip = (size: number, n: number, why: string) => {
    run.skipped.push({ size, n, why });
    say(`[${size}x${size} n=${n}] left out: ${why}`);
  };
  try {
    const keygen = await runCli(['keygen', '--out', keys, '--bits', String(o.bits), '--json']);
    if (keygen.code !== 0) throw new Error(`keygen failed: ${keygen.stderr.trim()}`);
    for (const size of o.sizes) {
      const files = manifest.sizes[size].collection.map((e) => join(DATA, String(size), e.file));
      let collection: Collection | undefined;
      let msPerImage: number | undefined; // measured at this size
      let bytesPerImage: number | undefined; // both servers, from the last point
      let failed: string | undefined;
      try {
        collection = await Collection.start(size, keys, work, ['packed']);
        const dbPath = collection.daemons().c1.db;
        for (const n of o.nBySize.get(size)!) {
          if (failed) {
            skip(size, n, `a smaller n of this size failed (${failed})`);
            continue;
          }
          if (n > files.length) {
            skip(size, n, `the scale collection has only ${files.length} images at ${size}x${size}`);
            continue;
          }
          const extra = files.slice(collection.count, n);
          const fit = () =>
            uploadRefusal({
              extra: n - collection!.count,
              msPerImage,
              bytesPerImage,
              freeBytes: freeBytes(dbPath),
              budgetSeconds: o.uploadBudget,
            });
          const refused = fit();
          if (refused) {
            skip(size, n, refused);
            continue;
          }
          let seconds = 0;
          let probe = 0;
          if (msPerImage === undefined && extra.length > PROBE_IMAGES) {
            probe = PROBE_IMAGES;
            const first = await collection.grow(extra.slice(0, probe));
            seconds += first.seconds;
            msPerImage = (first.seconds * 1000) / probe;
            say(`[${size}x${size}] probe: ${probe} images at ${first.imagesPerSecond.toPrecision(3)} images/s`);
            const after = fit();
            if (after) {
              skip(size, n, `${after} (the ${probe} probe images stay uploaded)`);
              continue;
            }
          }
          seconds += await growInChunks(collection, extra.slice(probe));
          msPerImage = (seconds * 1000) / extra.length;
          const upload: ScalePoint['upload'] = { images: extra.length, seconds, imagesPerSecond: extra.length / seconds, probe };
          say(`[${size}x${size} n=${n}] uploaded ${extra.length} (${upload.imagesPerSecond.toPrecision(3)} images/s)`);
          const point = await measurePoint(collection, n, upload, chosen.get(size)!, {
            keys,
            queryTimeoutSeconds: o.queryTimeout,
            log: say,
          });
          bytesPerImage = point.bytesPerImage.c1 + point.bytesPerImage.c2;
          run.points.push(point);
          if (point.error) failed = point.error;
          say(
            point.medianMs !== undefined
              ? `[${size}x${size} n=${n}] median ${duration(point.medianMs)}, plaintext ${duration(point.plaintextMs)}, ${point.stages.map((s) => `${s.name} ${duration(s.ms)}`).join(', ')}`
              : `[${size}x${size} n=${n}] ERROR: ${point.error}`,
          );
        }
      } catch (error) {
        // A daemon that dies or an upload that fails ends this size, not the run: keep what was measured.
        run.notes.push(`${size}x${size} stopped: ${(error as Error).message}`);
        say(`note: ${size}x${size} stopped: ${(error as Error).message}`);
      } finally {
        await collection?.stop();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  run.speedCheckMs.end = speedCheckMs();
  run.machine.loadAtEnd = loadavg()[0];
  run.wallSeconds = (Date.now() - started) / 1000;
  return run;
}

/**
 * Files per `fnn upload`: their paths stay well inside the kernel's limit on
 * a command line (about 70 bytes each); a chunk boundary costs at most one
 * partly filled group uploaded again, 1 in 285 groups at G = 14.
 */
const UPLOAD_CHUNK = 4000;

/** Upload the files in chunks; their time in seconds, summed. */
async function growInChunks(collection: Collection, files: string[]): Promise<number> {
  let seconds = 0;
  for (let i = 0; i < files.length; i += UPLOAD_CHUNK) seconds += (await collection.grow(files.slice(i, i + UPLOAD_CHUNK))).seconds;
  return seconds;
}

const SVG_NAME = 'scale-time.svg';

function publish(run: ScaleRun, jsonName: string) {
  writeScaleSvg(run, join(ROOT, 'bench', 'results', SVG_NAME));
  updateScaleSection(run, join(ROOT, 'docs', 'BENCHMARKS.md'), jsonName, SVG_NAME);
  printScaleReport(run);
  process.stdout.write(
    `wrote bench/results/${jsonName}, bench/results/${SVG_NAME}, docs/BENCHMARKS.md; wall time ${duration(run.wallSeconds * 1000)}\n`,
  );
}

async function main() {
  const started = Date.now();
  const o = options();
  if (o.report) return publish(JSON.parse(readFileSync(o.report, 'utf8')) as ScaleRun, basename(o.report));
  const run = await bench(o, started);
  const jsonName = `scale-${run.date.slice(0, 10)}-${cpuSlug(run.machine)}-${run.machine.cores}c${o.quick ? '-quick' : ''}.json`;
  writeScaleJson(run, join(ROOT, 'bench', 'results', jsonName));
  publish(run, jsonName);
  const errors = run.points.filter((p) => p.error).length + run.notes.filter((n) => n.includes('stopped:')).length;
  if (errors) {
    process.stderr.write(`bench:scale: ${errors} points or sizes failed (see above): not a complete measurement\n`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  process.stderr.write(`bench:scale: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
