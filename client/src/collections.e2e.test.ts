import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { COLLECTION_METADATA, MESSAGE_LIMIT_ENV } from '@fnn/shared';
import {
  cliQuery,
  conn,
  connect,
  freshDir,
  grpcError,
  heldByC1,
  makeKeys,
  randomPixels,
  startC1,
  startC2,
  writeImage,
  type Keys,
} from './testing/deployment';

// Several collections in one deployment: one pair of daemons holds a CT
// collection of 8x8 images made with --offset 1024 and an MR collection of
// 4x6 images, each with its own size, settings and replica. Each is queried on
// its own and exactly (every protocol's answer equals the plaintext
// reference), each applies its own stored settings, and the default
// collection (today's --db file) stays what it was.

const CT = { name: 'ct-chest', width: 8, height: 8, offset: 1024 };
const MR = { name: 'mr.brain_2', width: 4, height: 6, offset: 0 };
/** The default collection, the two above, and room for nothing else: the next is refused. */
const MAX_COLLECTIONS = 3;

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let c1Db: string;
let c2Db: string;
const images: Record<string, { id: string; pixels: Uint16Array }[]> = {};

const flags = () => conn(c1, c2, keys);
const env = { FNN_MAX_COLLECTIONS: String(MAX_COLLECTIONS) };

async function start(more: NodeJS.ProcessEnv = {}) {
  c2 = await startC2(keys, c2Db, '127.0.0.1:0', { ...env, ...more });
  c1 = await startC1(keys, c1Db, c2.address, '127.0.0.1:0', { ...env, ...more });
}

/** A daemon's fnn_database_bytes, as its /metrics serves it. */
async function databaseBytes(d: Daemon): Promise<number> {
  const body = await (await fetch(`http://${String(d.listening.metrics)}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith('fnn_database_bytes{'));
  return Number(line?.slice(line.lastIndexOf(' ') + 1));
}

/** Writes `n` random images of a collection's size into their own directory; keeps their pixels for the reference. */
function imagesOf(c: typeof CT, n: number): string {
  const dir = freshDir(join(work, c.name));
  images[c.name] = Array.from({ length: n }, (_, i) => {
    const pixels = randomPixels(c.width * c.height);
    writeImage(join(dir, `${c.name}-${i}.png`), pixels, c.width, c.height);
    return { id: `${c.name}-${i}.png`, pixels };
  });
  return dir;
}

/** Every record of the collection, nearest first, as the plaintext reference ranks them (ties: upload order). */
function reference(c: typeof CT, query: Uint16Array) {
  return images[c.name]
    .map((r, i) => ({ id: r.id, distance: r.pixels.reduce((sum, x, j) => sum + (x - query[j]) ** 2, 0), i }))
    .sort((a, b) => a.distance - b.distance || a.i - b.i)
    .map(({ id, distance }) => ({ id, distance: String(distance) }));
}

const c1Collections = async () => {
  const run = await runCli(['collections', '--c1', c1.address, '--insecure', '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (jsonLines(run.stdout)[0] as { collections: Record<string, unknown>[] }).collections;
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-collections-e2e-'));
  keys = await makeKeys(join(work, 'keys'));
  c1Db = join(work, 'c1.db');
  c2Db = join(work, 'c2.db');
  await start();
  // CT's groups go over a lowered message limit: its upload is in parts (UploadInParts), into its own collection too.
  const ct = await runCli(['upload', imagesOf(CT, 4), ...flags(), '--collection', CT.name, '--offset', String(CT.offset)], {
    [MESSAGE_LIMIT_ENV]: String(16 * 1024),
  });
  expect(ct.code, ct.stderr).toBe(0);
  const mr = await runCli(['upload', imagesOf(MR, 5), ...flags(), '--collection', MR.name]);
  expect(mr.code, mr.stderr).toBe(0);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('two collections of different sizes in one deployment', () => {
  it('`fnn collections` lists each with its own size, count and settings, the empty default first', async () => {
    expect(await c1Collections()).toEqual([
      { name: 'default', width: 0, height: 0, maxValue: 0, records: 0, layouts: [] },
      {
        name: CT.name,
        width: CT.width,
        height: CT.height,
        // The offset takes CT's pixels past 255: its pixel depth is 16 bits, MR's 8.
        maxValue: 65535,
        records: 4,
        layouts: ['packed', 'paper'],
        settings: { offset: CT.offset, fit: 'refuse' },
      },
      {
        name: MR.name,
        width: MR.width,
        height: MR.height,
        maxValue: 255,
        records: 5,
        layouts: ['packed', 'paper'],
        settings: { offset: 0, fit: 'refuse' },
      },
    ]);
    const human = await runCli(['collections', '--c1', c1.address, '--insecure']);
    expect(human.stdout.trim().split('\n')).toEqual([
      'default: empty',
      `${CT.name}: 4 records of 8x8 (max 65535, --offset 1024 --fit refuse), answers fnn, bf, fast`,
      `${MR.name}: 5 records of 4x6 (max 255, --offset 0 --fit refuse), answers fnn, bf, fast`,
    ]);
  });

  it('each collection is its own file beside --db; the default collection is --db itself, still empty', () => {
    for (const db of [c1Db, c2Db]) {
      expect(statSync(db).isFile()).toBe(true);
      for (const c of [CT, MR]) expect(existsSync(join(`${db}.collections`, `${c.name}.db`)), `${db} ${c.name}`).toBe(true);
    }
    expect(heldByC1(c1Db, keys)).toEqual([]);
    expect(heldByC1(join(`${c1Db}.collections`, `${CT.name}.db`), keys).map((r) => r.id)).toEqual(images[CT.name].map((r) => r.id));
  });

  for (const protocol of ['fast', 'fnn', 'bf']) {
    it(`--protocol ${protocol}: each collection answers from its own records only, exactly as the plaintext reference`, async () => {
      for (const c of [CT, MR]) {
        const query = randomPixels(c.width * c.height);
        const file = writeImage(join(work, `${c.name}-${protocol}-query.png`), query, c.width, c.height);
        const n = images[c.name].length;
        const { code, stderr, result } = await cliQuery([
          file,
          ...flags(),
          '--collection',
          c.name,
          '--protocol',
          protocol,
          '--k',
          String(n),
        ]);
        expect(code, `${c.name}: ${stderr}`).toBe(0);
        // CT's stored offset is applied to the query without the flag: the distances are of the images, unshifted.
        expect(
          result.results!.map((r) => ({ id: r.id, distance: r.distance })),
          c.name,
        ).toEqual(reference(c, query));
      }
    });
  }

  it('batch-query searches the collection it names', async () => {
    const dir = freshDir(join(work, 'batch'));
    const query = randomPixels(MR.width * MR.height);
    writeImage(join(dir, 'q.png'), query, MR.width, MR.height);
    const run = await runCli(['batch-query', dir, ...flags(), '--collection', MR.name, '--protocol', 'fast', '--k', '2', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [line] = jsonLines(run.stdout).filter((l) => 'results' in l) as { results: { id: string; distance: string }[] }[];
    expect(line.results.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(reference(MR, query).slice(0, 2));
  });

  it("each applies its own stored settings: CT refuses --offset 0, MR refuses CT's --offset 1024, with exit 2", async () => {
    const ctQuery = writeImage(join(work, 'ct-offset.png'), randomPixels(64), CT.width, CT.height);
    const ct = await runCli(['query', ctQuery, ...flags(), '--collection', CT.name, '--offset', '0']);
    expect(ct.code).toBe(EXIT.usage);
    expect(ct.stderr.trim()).toBe('fnn: this collection was created with --offset 1024; drop --offset or pass 1024');
    const mrQuery = writeImage(join(work, 'mr-offset.png'), randomPixels(24), MR.width, MR.height);
    const mr = await runCli(['upload', mrQuery, ...flags(), '--collection', MR.name, '--offset', '1024']);
    expect(mr.code).toBe(EXIT.usage);
    expect(mr.stderr.trim()).toBe('fnn: this collection was created with --offset 0; drop --offset or pass 0');
  });

  it("an image of one collection's size is refused by the other, naming the other's size", async () => {
    const mrImage = writeImage(join(work, 'mr-into-ct.png'), randomPixels(24), MR.width, MR.height);
    const run = await runCli(['query', mrImage, ...flags(), '--collection', CT.name]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/mr-into-ct\.png: 4x6, but the collection's images are 8x8/);
  });

  it('status, check and delete work on the collection named; the others are untouched', async () => {
    const status = await runCli(['status', ...flags(), '--collection', MR.name, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonLines(status.stdout)[0]).toMatchObject({
      collection: MR.name,
      c1: { records: 5, width: MR.width, height: MR.height },
      c2: { replicaRecords: 5 },
    });
    for (const c of [CT, MR]) {
      const check = await runCli(['check', ...flags(), '--collection', c.name]);
      expect(check.code, `${c.name}: ${check.stdout}${check.stderr}`).toBe(0);
    }
    const gone = images[MR.name][1].id;
    const del = await runCli(['delete', gone, ...flags(), '--collection', MR.name]);
    expect(del.code, del.stderr).toBe(0);
    images[MR.name].splice(1, 1);
    // The same ID is not in CT: its delete there is NOT_FOUND, and CT keeps its 4.
    const elsewhere = await runCli(['delete', gone, ...flags(), '--collection', CT.name]);
    expect(elsewhere.code).toBe(EXIT.notFound);
    const counts = Object.fromEntries((await c1Collections()).map((c) => [c.name, c.records]));
    expect(counts).toEqual({ default: 0, [CT.name]: 4, [MR.name]: 4 });
    const query = randomPixels(MR.width * MR.height);
    const file = writeImage(join(work, 'mr-after-delete.png'), query, MR.width, MR.height);
    const { code, stderr, result } = await cliQuery([file, ...flags(), '--collection', MR.name, '--protocol', 'fast', '--k', '4']);
    expect(code, stderr).toBe(0);
    expect(result.results!.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(reference(MR, query));
  });

  it('a query of a collection that does not exist is NOT_FOUND, exit 4, naming it in one line', async () => {
    const file = writeImage(join(work, 'nowhere.png'), randomPixels(64), CT.width, CT.height);
    for (const protocol of ['fast', 'fnn']) {
      const run = await runCli(['query', file, ...flags(), '--collection', 'xr-hand', '--protocol', protocol]);
      expect(run.code, protocol).toBe(EXIT.notFound);
      expect(run.stderr.trim(), protocol).toBe('fnn: NOT_FOUND: C1 has no collection "xr-hand"; `fnn collections` lists those it has');
    }
  });

  it("the daemons refuse any caller's unknown or malformed collection: NOT_FOUND naming it, INVALID_ARGUMENT for a bad name", async () => {
    const clients = connect(c1.address, c2.address);
    const named = (name: string) => {
      const m = new Metadata();
      m.set(COLLECTION_METADATA, name);
      return m;
    };
    const unary = <Res>(
      invoke: (m: Metadata, o: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => unknown,
      name: string,
    ) =>
      grpcError(
        new Promise((resolve, reject) =>
          invoke(named(name), { deadline: new Date(Date.now() + 10_000) }, (e, r) => (e ? reject(e) : resolve(r))),
        ),
        name,
      );
    try {
      const share = await unary((m, o, cb) => clients.retrieval.putShare({ distance: [], bound: [], coarse: [] }, m, o, cb), 'xr-hand');
      expect([share.code, share.details]).toEqual([
        status.NOT_FOUND,
        'C2 has no collection "xr-hand"; its replica is written by the collection\'s uploads, or by `fnn repair --collection xr-hand`',
      ]);
      const commit = await unary(
        (m, o, cb) => clients.replica.commitGroup({ collectionId: Buffer.alloc(16), group: 0, digest: '' }, m, o, cb),
        'xr-hand',
      );
      expect(commit.code).toBe(status.NOT_FOUND);
      for (const bad of ['../c1', 'CT Chest']) {
        const refused = await unary((m, o, cb) => clients.db.status({}, m, o, cb), bad);
        expect(refused.code, bad).toBe(status.INVALID_ARGUMENT);
        expect(refused.details, bad).toMatch(/^collection name ".*" is not allowed: 1-64 of a-z/);
      }
      const groups = await unary((m, o, cb) => clients.db.getGroup({ group: 0 }, m, o, cb), 'xr-hand');
      expect(groups.code).toBe(status.NOT_FOUND);
    } finally {
      clients.close();
    }
  });

  it('a name outside the rule is a usage error before anything is connected', async () => {
    const run = await runCli(['status', ...flags(), '--collection', '../etc']);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr.trim()).toBe(
      `fnn: --collection "../etc" is not a collection name: 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
    );
  });

  it('a collection beyond --max-collections is refused (RESOURCE_EXHAUSTED, exit 5) and leaves no file', async () => {
    const dir = freshDir(join(work, 'xr'));
    writeImage(join(dir, 'xr-0.png'), randomPixels(16), 4, 4);
    const run = await runCli(['upload', dir, ...flags(), '--collection', 'xr-hand']);
    expect(run.code).toBe(EXIT.unavailable);
    expect(run.stderr).toContain(
      `C1 holds ${MAX_COLLECTIONS} collections, at most ${MAX_COLLECTIONS}: collection "xr-hand" is not created`,
    );
    expect(existsSync(join(`${c1Db}.collections`, 'xr-hand.db'))).toBe(false);
    expect((await c1Collections()).map((c) => c.name)).toEqual(['default', CT.name, MR.name]);
  });

  it('the default collection is still today’s: an upload and query without --collection go to --db', async () => {
    const pixels = randomPixels(16);
    const file = writeImage(join(work, 'default-0.png'), pixels, 4, 4);
    const up = await runCli(['upload', file, ...flags()]);
    expect(up.code, up.stderr).toBe(0);
    expect(heldByC1(c1Db, keys).map((r) => r.id)).toEqual(['default-0.png']);
    const { code, stderr, result } = await cliQuery([file, ...flags()]);
    expect(code, stderr).toBe(0);
    expect(result.results![0]).toMatchObject({ id: 'default-0.png', distance: '0' });
  });

  it("C2 without one collection's replica: check of that collection exits 3, repair rewrites it from C1, the other is untouched", async () => {
    const address = c2.address;
    await c2.stop();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(`${c2Db}.collections`, `${MR.name}.db${suffix}`), { force: true });
    c2 = await startC2(keys, c2Db, address, env);
    const check = await runCli(['check', ...flags(), '--collection', MR.name]);
    expect(check.code, check.stdout + check.stderr).toBe(EXIT.invalid);
    expect(check.stdout).toContain("C1 holds 4 records, C2's replica serves 0");
    const other = await runCli(['check', ...flags(), '--collection', CT.name]);
    expect(other.code, other.stdout + other.stderr).toBe(0);
    const repair = await runCli(['repair', ...flags(), '--collection', MR.name]);
    expect(repair.code, repair.stderr).toBe(0);
    const again = await runCli(['check', ...flags(), '--collection', MR.name]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const query = randomPixels(MR.width * MR.height);
    const file = writeImage(join(work, 'mr-after-repair.png'), query, MR.width, MR.height);
    const { code, stderr, result } = await cliQuery([file, ...flags(), '--collection', MR.name, '--protocol', 'fast', '--k', '4']);
    expect(code, stderr).toBe(0);
    expect(result.results!.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(reference(MR, query));
  });

  it('the audit trail names the collection of each call, and no record ID', () => {
    const entries = readFileSync(`${c1Db}.audit.jsonl`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { rpc: string; outcome: string; what: Record<string, unknown> });
    const queried = (name: string) =>
      entries.filter((e) => e.rpc === 'QueryWithProgress' && e.what.collection === name && e.outcome === 'OK');
    expect(queried(CT.name).length).toBeGreaterThanOrEqual(3);
    expect(queried(MR.name).length).toBeGreaterThanOrEqual(3);
    const ctUploads = entries.filter((e) => ['Upload', 'UploadInParts'].includes(e.rpc) && e.what.collection === CT.name);
    expect(ctUploads.length).toBeGreaterThan(0);
    expect(ctUploads.every((e) => e.rpc === 'UploadInParts' && e.outcome === 'OK')).toBe(true);
    expect(entries.filter((e) => e.rpc === 'Upload' && e.what.collection === MR.name && e.outcome === 'OK').length).toBeGreaterThan(0);
    // The default collection's calls name none, as before.
    expect(entries.some((e) => e.rpc === 'Upload' && e.what.collection === undefined)).toBe(true);
    const text = JSON.stringify(entries);
    for (const c of [CT, MR]) for (const r of images[c.name]) expect(text).not.toContain(r.id);
  });

  it('after a restart both daemons open every collection again, and each still answers exactly', async () => {
    await c1.stop();
    await c2.stop();
    await start({ FNN_METRICS: '127.0.0.1:0' });
    // The metrics' database size counts every collection's file, not only --db's.
    for (const [d, db] of [
      [c1, c1Db],
      [c2, c2Db],
    ] as const) {
      const files = [db, ...[CT, MR].map((c) => join(`${db}.collections`, `${c.name}.db`))];
      expect(await databaseBytes(d), db).toBeGreaterThanOrEqual(files.reduce((sum, f) => sum + statSync(f).size, 0));
    }
    expect((await c1Collections()).map((c) => [c.name, c.records])).toEqual([
      ['default', 1],
      [CT.name, 4],
      [MR.name, 4],
    ]);
    const query = randomPixels(CT.width * CT.height);
    const file = writeImage(join(work, 'ct-after-restart.png'), query, CT.width, CT.height);
    const { code, stderr, result } = await cliQuery([file, ...flags(), '--collection', CT.name, '--protocol', 'fast', '--k', '4']);
    expect(code, stderr).toBe(0);
    expect(result.results!.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(reference(CT, query));
  });
});
