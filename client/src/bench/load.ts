import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_PROTOCOL, fnnProtocol, plaintextNearest, QUERY_RETRIES } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from '../harness';
import { INSECURE, makeKeys, randomPixels, startC1, startC2, writeImage, type Keys } from '../testing/deployment';
import { duration, machine, type Machine } from './report';

// `npm run bench:load`: concurrent clients against one C1/C2 pair, each a
// sequence of `fnn upload` and `fnn query` runs (the real CLI, so a latency is
// what a user waits for, process start included). Every answer is checked
// against the plaintext nearest neighbour of what was stored at that moment.
//
// How exactness stays checkable while the collection changes: the anchors
// (uploaded first) have pixels in [0, 60]; queries near an anchor have pixels
// in [0, 63]; every image uploaded under load has pixels in [200, 255], so it
// is farther from any such query than every anchor (distance >= 137^2 d
// against <= 63^2 d), and the k nearest (k <= anchors) are the same before,
// during and after any upload. The other queries are an uploaded image itself,
// once its upload has finished: distance 0, unique because every uploaded
// image is distinct.

export interface LoadOptions {
  bits: number;
  clients: number;
  /** Operations per client: every third an upload, the others queries. */
  ops: number;
  size: number;
  anchors: number;
  log?: (line: string) => void;
}

export interface Operation {
  client: number;
  kind: 'upload' | 'query';
  /** For queries: near an anchor, or an uploaded image itself; the protocol and k. */
  detail: string;
  ms: number;
  ok: boolean;
  exact?: boolean;
  error?: string;
}

export interface LoadRun {
  date: string;
  code?: string;
  machine: Machine;
  options: Omit<LoadOptions, 'log'>;
  operations: Operation[];
  wallSeconds: number;
  recordsAtEnd: number;
}

const ANCHOR_MAX = 60;
const NOISE = 3;
const UPLOAD_MIN = 200;

export async function runLoad(o: LoadOptions): Promise<LoadRun> {
  const log = o.log ?? (() => {});
  if (o.anchors < 3) throw new RangeError('at least 3 anchors (queries ask for k = 3)');
  const work = mkdtempSync(join(tmpdir(), 'fnn-load-'));
  let c1: Daemon | undefined;
  let c2: Daemon | undefined;
  const m = machine();
  try {
    const keys: Keys = await makeKeys(join(work, 'keys'), o.bits);
    c2 = await startC2(keys, join(work, 'c2.db'));
    c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
    // Plaintext (--insecure), as the other benchmarks: TLS is not what this measures.
    const conn = ['--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE];
    const d = o.size * o.size;

    const anchorDir = join(work, 'anchors');
    mkdirSync(anchorDir);
    const stored: { id: string; pixels: Uint16Array }[] = [];
    for (let i = 0; i < o.anchors; i++) {
      const id = `anchor-${String(i).padStart(3, '0')}.png`;
      const pixels = randomPixels(d, 0, ANCHOR_MAX);
      writeImage(join(anchorDir, id), pixels, o.size, o.size);
      stored.push({ id, pixels });
    }
    const first = await runCli(['upload', anchorDir, ...conn, '--json']);
    if (first.code !== 0) throw new Error(`uploading the anchors failed: ${first.stderr}`);
    log(`${o.anchors} anchors stored; ${o.clients} clients x ${o.ops} operations at ${o.bits} bits, ${o.size}x${o.size}`);

    const operations: Operation[] = [];
    const started = Date.now();
    const client = async (c: number) => {
      const dir = join(work, `client-${c}`);
      mkdirSync(dir);
      const mine: { id: string; pixels: Uint16Array }[] = [];
      for (let j = 0; j < o.ops; j++) {
        const t0 = Date.now();
        if ((j + c) % 3 === 0) {
          const id = `client-${c}-${j}.png`;
          const pixels = randomPixels(d, UPLOAD_MIN, 255);
          const path = writeImage(join(dir, id), pixels, o.size, o.size);
          const run = await runCli(['upload', path, ...conn, '--json']);
          const ok = run.code === 0;
          if (ok) {
            stored.push({ id, pixels });
            mine.push({ id, pixels });
          }
          operations.push({
            client: c,
            kind: 'upload',
            detail: 'new ID',
            ms: Date.now() - t0,
            ok,
            error: ok ? undefined : lastLine(run.stderr),
          });
          continue;
        }
        const own = mine.length > 0 && j % 2 === 0 ? mine[mine.length - 1] : undefined;
        const protocol = j % 4 === 1 ? fnnProtocol.name : DEFAULT_PROTOCOL; // one query in four is the paper's
        const k = own ? 1 : 1 + 2 * (j % 2);
        let pixels: Uint16Array;
        if (own) pixels = own.pixels;
        else {
          const anchor = stored[Math.floor(Math.random() * o.anchors)].pixels;
          pixels = anchor.map((v) => Math.min(ANCHOR_MAX + NOISE, Math.max(0, v + Math.floor(Math.random() * (2 * NOISE + 1)) - NOISE)));
        }
        const path = writeImage(join(dir, `q-${j}.png`), pixels, o.size, o.size);
        const before = stored.slice();
        const run = await runCli(['query', path, ...conn, '--protocol', protocol, '--k', String(k), '--json']);
        const ms = Date.now() - t0;
        const detail = `${own ? 'an uploaded image' : 'near an anchor'}, ${protocol}, k = ${k}`;
        if (run.code !== 0) {
          operations.push({ client: c, kind: 'query', detail, ms, ok: false, error: lastLine(run.stderr) });
          continue;
        }
        const [result] = jsonLines(run.stdout) as { results: { id: string; distance: string }[] }[];
        const got = result.results.map((r) => `${r.id}:${r.distance}`).join(' ');
        const wantBefore = plaintextNearest(before, pixels, k)
          .map((r) => `${r.id}:${r.distance}`)
          .join(' ');
        const wantAfter = plaintextNearest(stored.slice(), pixels, k)
          .map((r) => `${r.id}:${r.distance}`)
          .join(' ');
        if (wantBefore !== wantAfter) throw new Error(`the load's design is broken: the answer to ${detail} changed during the query`);
        const exact = got === wantBefore;
        operations.push({
          client: c,
          kind: 'query',
          detail,
          ms,
          ok: true,
          exact,
          error: exact ? undefined : `got ${got}, want ${wantBefore}`,
        });
      }
      log(`client ${c} done`);
    };
    await Promise.all(Array.from({ length: o.clients }, (_, c) => client(c)));
    const wallSeconds = (Date.now() - started) / 1000;
    const status = jsonLines((await runCli(['status', '--c1', c1.address, '--c2', c2.address, INSECURE, '--json'])).stdout)[0] as {
      c1: { records: number };
    };
    m.loadAtEnd = loadavg()[0];
    const { log: _log, ...options } = o;
    return {
      date: new Date().toISOString(),
      code: gitDescribe(),
      machine: m,
      options,
      operations,
      wallSeconds,
      recordsAtEnd: status.c1.records,
    };
  } finally {
    await c1?.stop();
    await c2?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

function gitDescribe(): string | undefined {
  const r = spawnSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The report: the same lines on the terminal and in docs/BENCHMARKS.md. */
export function loadSummary(run: LoadRun): string[] {
  const m = run.machine;
  const o = run.options;
  const groups: [string, Operation[]][] = [
    ['query, fast', run.operations.filter((x) => x.kind === 'query' && x.detail.includes(', fast,'))],
    ['query, fnn', run.operations.filter((x) => x.kind === 'query' && x.detail.includes(', fnn,'))],
    ['query, all', run.operations.filter((x) => x.kind === 'query')],
    ['upload', run.operations.filter((x) => x.kind === 'upload')],
  ];
  const rows = groups.map(([name, ops]) => {
    const ms = ops.filter((x) => x.ok).map((x) => x.ms);
    const exact = name.startsWith('query') ? `${ops.filter((x) => x.exact).length}/${ops.filter((x) => x.ok).length}` : '-';
    return `| ${name} | ${ops.length} | ${ops.filter((x) => !x.ok).length} | ${exact} | ${duration(percentile(ms, 50))} | ${duration(percentile(ms, 95))} | ${duration(Math.max(...ms))} |`;
  });
  const failures = run.operations.filter((x) => !x.ok || x.exact === false);
  return [
    `Date: ${run.date.slice(0, 10)}; code ${run.code ?? 'unknown'}. Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB.toFixed(1)} GiB RAM; Node ${m.node}${m.loadAtStart === undefined ? '' : `; load average ${m.loadAtStart.toFixed(2)} at the start, ${m.loadAtEnd?.toFixed(2)} at the end`}. Both daemons and all clients on this machine.`,
    `Keys: ${o.bits}-bit Paillier. Images ${o.size}x${o.size}; ${o.anchors} anchors stored first, then ${o.clients} concurrent clients x ${o.ops} operations (every third an upload of a new ID, the others fast or fnn queries, k = 1 or 3); ${run.recordsAtEnd} records at the end; wall time ${duration(run.wallSeconds * 1000)}, ${(run.operations.length / run.wallSeconds).toFixed(2)} operations/s.`,
    '',
    '| operation | count | failed | exact | p50 | p95 | max |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Latency: one `fnn` command end to end at the client (process start, key loading and the worker pool included), while the other clients run. Exact: the answer (IDs and distances) equals the plaintext nearest neighbours of what was stored when the query started.',
    `Checkable while the collection changes: anchors have pixels in [0, ${ANCHOR_MAX}], queries near an anchor in [0, ${ANCHOR_MAX + NOISE}], images uploaded under load in [${UPLOAD_MIN}, 255], so no upload can enter the k nearest of such a query (each run checks that the reference answer is the same at the query's start and end); the other queries are an image a client uploaded itself, found at distance 0. A fast query refused because a group changed under it (an upload in progress) is asked again by \`fnn query\`, up to ${QUERY_RETRIES} times; its latency includes the retries.`,
    ...(failures.length
      ? ['', 'Failed or inexact:', ...failures.map((f) => `- client ${f.client}, ${f.kind} (${f.detail}): ${f.error}`)]
      : []),
  ];
}

const START = '<!-- load:start -->';
const END = '<!-- load:end -->';

export function writeLoadSection(run: LoadRun, path: string): void {
  const section = [
    START,
    '<!-- generated by `npm run bench:load`: edits between these markers are overwritten -->',
    '',
    ...loadSummary(run),
    '',
    END,
  ].join('\n');
  const current = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\n';
  const start = current.indexOf(START);
  const end = current.indexOf(END);
  const next =
    start >= 0 && end > start
      ? current.slice(0, start) + section + current.slice(end + END.length)
      : `${current.trimEnd()}\n\n## Under load: concurrent clients\n\n${section}\n`;
  writeFileSync(path, next);
}

const USAGE = `usage: npm run bench:load -- [--bits 2048] [--clients 8] [--ops 6] [--size 16] [--anchors 8] [--no-write]
       npm run bench:load -- --report bench/results/load-FILE.json   (only rewrite the section from a saved run)
  writes the section between the load markers of docs/BENCHMARKS.md and bench/results/load-DATE-BITS.json`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bits: { type: 'string', default: '2048' },
      clients: { type: 'string', default: '8' },
      ops: { type: 'string', default: '6' },
      size: { type: 'string', default: '16' },
      anchors: { type: 'string', default: '8' },
      'no-write': { type: 'boolean', default: false },
      report: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return void process.stdout.write(USAGE + '\n');
  const root = resolve(__dirname, '..', '..', '..');
  if (values.report) {
    const saved = JSON.parse(readFileSync(values.report, 'utf8')) as LoadRun;
    process.stdout.write(loadSummary(saved).join('\n') + '\n');
    return writeLoadSection(saved, join(root, 'docs', 'BENCHMARKS.md'));
  }
  const run = await runLoad({
    bits: Number(values.bits),
    clients: Number(values.clients),
    ops: Number(values.ops),
    size: Number(values.size),
    anchors: Number(values.anchors),
    log: (line) => process.stderr.write(line + '\n'),
  });
  process.stdout.write(loadSummary(run).join('\n') + '\n');
  if (!values['no-write']) {
    const json = join(root, 'bench', 'results', `load-${run.date.slice(0, 10)}-${run.options.bits}.json`);
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(json, JSON.stringify(run, null, 2) + '\n');
    writeLoadSection(run, join(root, 'docs', 'BENCHMARKS.md'));
  }
  const bad = run.operations.filter((x) => !x.ok || x.exact === false).length;
  if (bad > 0) {
    process.stderr.write(`${bad} operations failed or were inexact\n`);
    process.exitCode = 1;
  }
}

if (require.main === module)
  void main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
