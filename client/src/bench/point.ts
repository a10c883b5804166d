import { readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  fnnProtocol,
  isProtocolName,
  plaintextNearest,
  PROTOCOL_NAMES,
  protocolModule,
  type Layout,
  type PlaintextRecord,
} from '@fnn/shared';
import { jsonLines, runCli, startDaemon, type Daemon } from '../harness';
import { readImage } from '../image-files';

// One image size = one collection (C1 stores one size): fresh daemons, records
// uploaded incrementally as n grows, and at each n every protocol queried with
// the same held-out slices. Everything goes through the real CLI and daemons
// over gRPC, as a hospital would run it.

/**
 * Every protocol the bench asks for, in table order: the registry's, so a new
 * protocol is measured without an edit here; a protocol the CLI rejects is
 * reported and skipped.
 */
export const PROTOCOLS: string[] = [...PROTOCOL_NAMES];
/** The paper's protocol: the reference for ratios. */
export const PAPER_PROTOCOL: string = fnnProtocol.name;

/** The layouts a collection needs for these protocols (the packed one always: C2's replica is packed). */
export function layoutsFor(protocols: string[]): Layout[] {
  const read = protocols.filter(isProtocolName).map((p) => protocolModule(p).layout);
  return read.includes('paper') ? ['packed', 'paper'] : ['packed'];
}

export interface ProtocolResult {
  protocol: string;
  /** ok: measured; skipped: over the time budget; unsupported: the CLI rejects it; failed: an error. */
  status: 'ok' | 'skipped' | 'unsupported' | 'failed';
  note?: string;
  /** End-to-end query times (ms) at the client, one per query run. */
  searchMs: number[];
  medianMs?: number;
  /** Only if the protocol reports its lower-bound stage (`lowerBoundMs` in --json). */
  lowerBoundMs?: number;
  /** Median over queries of rejected/total. */
  rejectRatio?: number;
  /** Answers whose ID and distance equal the plaintext nearest neighbour's. */
  exact: number;
}

/** The plaintext nearest neighbour of each query file: what every protocol must return. */
export type Answers = Map<string, { id: string; distance: bigint }>;

export interface PointResult {
  size: number;
  n: number;
  upload: { images: number; seconds: number; imagesPerSecond: number };
  /** Peak resident memory (VmHWM, bytes) of each daemon process so far. */
  peakRss: { c1: number; c2: number };
  /** Each daemon's SQLite file (with its WAL) after this upload; 0 where it keeps none. */
  databaseBytes: { c1: number; c2: number };
  /** In-process plaintext brute force over the same images: the floor. */
  plaintextMs: number;
  protocols: ProtocolResult[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** VmHWM of a live process, in bytes (Linux; 0 where /proc is missing). */
export function peakRss(pid: number | undefined): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** An SQLite file with its WAL, in bytes (0 where neither exists). */
export function fileBytes(path: string): number {
  return [path, `${path}-wal`].reduce((sum, p) => {
    try {
      return sum + statSync(p).size;
    } catch {
      return sum;
    }
  }, 0);
}

export class Collection {
  /** The images uploaded so far, in upload order: the plaintext reference searches them. */
  readonly stored: PlaintextRecord[] = [];
  private c1!: Daemon;
  private c2!: Daemon;
  private constructor(
    readonly size: number,
    private readonly keys: string,
    private readonly db: string,
    private readonly c2Db: string,
    /** What to upload: the packed layout, and the paper's per-pixel one (fnn and bf: d encryptions per record more) if listed. */
    private readonly layouts: Layout[],
  ) {}

  static async start(size: number, keys: string, work: string, layouts: Layout[]): Promise<Collection> {
    const collection = new Collection(size, keys, join(work, `c1-${size}.db`), join(work, `c2-${size}.db`), layouts);
    for (const db of [collection.db, collection.c2Db]) rmSync(db, { force: true });
    await collection.startDaemons();
    return collection;
  }

  private async startDaemons() {
    // C2's replica database (the fast protocol) by environment, which a C2 without one ignores.
    const env = { FNN_LOG_LEVEL: 'warn', FNN_C2_DB: this.c2Db };
    // Plaintext: the benchmark measures the protocols, the same with or without TLS around them.
    this.c2 = await startDaemon('c2', ['--listen', '127.0.0.1:0', '--keys', this.keys, '--insecure'], env);
    const c1Args = ['--listen', '127.0.0.1:0', '--keys', this.keys, '--c2', this.c2.address, '--db', this.db, '--insecure'];
    this.c1 = await startDaemon('c1', c1Args, env).catch(async (e) => {
      await this.c2.stop();
      throw e;
    });
  }

  /**
   * After a query was cut off, C1 and C2 may still be working on it and would
   * slow every later measurement: restart them on the same database.
   */
  private async restart() {
    await this.stop();
    await this.startDaemons();
  }

  /** Where each daemon listens, its process and its database file (for measurements from outside). */
  daemons() {
    return {
      c1: { address: this.c1.address, pid: this.c1.child.pid, db: this.db },
      c2: { address: this.c2.address, pid: this.c2.child.pid, db: this.c2Db },
    };
  }

  get count() {
    return this.stored.length;
  }

  /** Upload files (the next records in the manifest's order) so the collection grows to n. */
  async grow(files: string[]): Promise<PointResult['upload']> {
    const started = Date.now();
    // C2 by environment: an upload that also sends C2 a replica (fast) needs it, an older one ignores it.
    const layout = this.layouts.includes('paper') ? [] : ['--no-paper-layout'];
    const run = await runCli(['upload', ...files, ...layout, '--c1', this.c1.address, '--keys', this.keys, '--insecure', '--json'], {
      FNN_C2: this.c2.address,
    });
    if (run.code !== 0) throw new Error(`upload failed (exit ${run.code}): ${run.stderr.trim()}`);
    const seconds = (Date.now() - started) / 1000;
    for (const f of files) this.stored.push({ id: basename(f), pixels: readImage(f).pixels });
    return { images: files.length, seconds, imagesPerSecond: files.length / seconds };
  }

  resources() {
    return {
      peakRss: { c1: peakRss(this.c1.child.pid), c2: peakRss(this.c2.child.pid) },
      databaseBytes: { c1: fileBytes(this.db), c2: fileBytes(this.c2Db) },
    };
  }

  /**
   * Median time of the plaintext answer (images already decoded); the answers
   * themselves check the protocols. Each query is repeated for at least 50 ms,
   * after one warm-up, so that microsecond times are not timer and JIT noise.
   */
  plaintext(queries: string[]) {
    const times: number[] = [];
    const answers: Answers = new Map();
    for (const q of queries) {
      const pixels = readImage(q).pixels;
      answers.set(q, plaintextNearest(this.stored, pixels, 1)[0]);
      const started = process.hrtime.bigint();
      let runs = 0;
      let elapsed: number;
      do {
        plaintextNearest(this.stored, pixels, 1);
        runs++;
        elapsed = Number(process.hrtime.bigint() - started) / 1e6;
      } while (elapsed < 50);
      times.push(elapsed / runs);
    }
    return { ms: median(times), answers };
  }

  /**
   * Run the queries with one protocol, one after another (so each time is one
   * query alone on the machine), stopping early once the next would pass the
   * budget. A query is cut off by the CLI's deadline at the budget.
   */
  async query(protocol: string, queries: string[], answers: Answers, budgetMs: number): Promise<ProtocolResult> {
    const result: ProtocolResult = { protocol, status: 'ok', searchMs: [], exact: 0 };
    const ratios: number[] = [];
    const bounds: number[] = [];
    const started = Date.now();
    for (const q of queries) {
      const spent = Date.now() - started;
      if (result.searchMs.length > 0 && spent + median(result.searchMs) > budgetMs) {
        result.note = `${result.searchMs.length} of ${queries.length} queries: the next would pass the ${budgetMs / 1000} s budget`;
        break;
      }
      const timeout = String(Math.ceil(Math.max(budgetMs - spent, 1000) / 1000));
      const args = [
        'query',
        q,
        '--protocol',
        protocol,
        '--c1',
        this.c1.address,
        '--c2',
        this.c2.address,
        '--keys',
        this.keys,
        '--insecure',
      ];
      const run = await runCli([...args, '--json', '--timeout', timeout]);
      if (run.code === 2 && /protocol/i.test(run.stderr)) {
        return { ...result, status: 'unsupported', note: `the CLI rejects --protocol ${protocol}` };
      }
      const [reply] = jsonLines(run.stdout);
      if (run.code !== 0 || !reply || reply.error) {
        const reason = run.stderr.trim().split('\n').pop() || `exit ${run.code}`;
        if (run.code === 5) await this.restart();
        result.status = 'failed';
        result.note = run.code === 5 ? `cut off at the ${budgetMs / 1000} s budget, daemons restarted: ${reason}` : reason;
        break;
      }
      const first = (reply.results as { id: string; distance: string }[])[0];
      const want = answers.get(q)!;
      if (first && first.id === want.id && first.distance === want.distance.toString()) result.exact++;
      result.searchMs.push(Number(reply.elapsedMs));
      ratios.push(Number(reply.rejected) / Number(reply.total));
      if (typeof reply.lowerBoundMs === 'number') bounds.push(reply.lowerBoundMs);
    }
    // Queries that finished before a failure still count; the note says what happened.
    if (result.searchMs.length === 0) return result;
    result.medianMs = median(result.searchMs);
    result.rejectRatio = median(ratios);
    if (bounds.length) result.lowerBoundMs = median(bounds);
    return result;
  }

  async stop() {
    await this.c1.stop();
    await this.c2.stop();
  }
}
