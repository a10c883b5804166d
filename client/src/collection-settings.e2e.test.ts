import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, runCli, type Daemon } from './harness';
import { EXIT } from './output';
import { cliQuery, conn, freshDir, heldByC1, makeKeys, randomPixels, startC1, startC2, writeImage, type Keys } from './testing/deployment';

// A collection remembers what it was created with (offset, fit, size,
// layouts): later uploads and queries apply it without the flags, and a flag
// that contradicts it is refused by the CLI, exit 2, before any image is
// encrypted. Each describe is its own deployment: a collection is fixed by
// its first upload.

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
const W = 8;
const H = 8;
let work: string;
let keys: Keys;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-settings-e2e-'));
  keys = await makeKeys(join(work, 'keys'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A fresh pair of daemons with empty databases under `name`. */
function deployment(name: string) {
  const d: { c1?: Daemon; c2?: Daemon; db: string; flags: () => string[] } = {
    db: '',
    flags: () => conn(d.c1!, d.c2!, keys),
  };
  beforeAll(async () => {
    const dir = freshDir(join(work, name));
    d.db = join(dir, 'c1.db');
    d.c2 = await startC2(keys, join(dir, 'c2.db'));
    d.c1 = await startC1(keys, d.db, d.c2.address);
  });
  afterAll(async () => {
    await d.c1?.stop();
    await d.c2?.stop();
  });
  return d;
}

async function c1Status(d: ReturnType<typeof deployment>) {
  const run = await runCli(['status', ...d.flags(), '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (jsonLines(run.stdout)[0] as { c1: { records: number; width: number; height: number; settings?: unknown } }).c1;
}

const squaredDistance = (a: Uint16Array, b: Uint16Array) => a.reduce((sum, x, i) => sum + (x - b[i]) ** 2, 0);

describe('a collection created with --offset 1024', () => {
  const d = deployment('offset');
  const images = [randomPixels(W * H), randomPixels(W * H), randomPixels(W * H)];
  let dir: string;

  beforeAll(async () => {
    dir = freshDir(join(work, 'offset-images'));
    images.forEach((pixels, i) => writeImage(join(dir, `r${i}.png`), pixels, W, H));
    const run = await runCli(['upload', dir, ...d.flags(), '--offset', '1024']);
    expect(run.code, run.stderr).toBe(0);
  });

  it('keeps the offset and fit with the collection, and stores the images under it', async () => {
    expect(await c1Status(d)).toMatchObject({ records: 3, width: W, height: H, settings: { offset: 1024, fit: 'refuse' } });
    const held = heldByC1(d.db, keys);
    expect(held.map((r) => r.id)).toEqual(['r0.png', 'r1.png', 'r2.png']);
    held.forEach((r, i) => expect(Array.from(r.pixels)).toEqual(Array.from(images[i], (x) => x + 1024)));
  });

  it('a query without --offset takes 1024 and gets the exact, unshifted distances', async () => {
    const query = join(work, 'offset-query.png');
    const pixels = randomPixels(W * H);
    writeImage(query, pixels, W, H);
    const { code, stderr, result } = await cliQuery([query, ...d.flags(), '--k', '3']);
    expect(code, stderr).toBe(0);
    const expected = images
      .map((img, i) => ({ id: `r${i}.png`, distance: String(squaredDistance(img, pixels)) }))
      .sort((a, b) => Number(a.distance) - Number(b.distance) || a.id.localeCompare(b.id));
    expect(result.results!.map((r) => ({ id: r.id, distance: r.distance }))).toEqual(expected);
  });

  it('a query that repeats --offset 1024 is answered; one with --offset 0 is refused with exit 2, naming 1024', async () => {
    const same = await cliQuery([join(dir, 'r1.png'), ...d.flags(), '--offset', '1024']);
    expect(same.code, same.stderr).toBe(0);
    expect(same.result.results![0]).toMatchObject({ id: 'r1.png', distance: '0' });
    for (const command of ['query', 'batch-query']) {
      const run = await runCli([command, join(dir, 'r1.png'), ...d.flags(), '--offset', '0']);
      expect(run.code, command).toBe(EXIT.usage);
      expect(run.stderr.trim(), command).toBe('fnn: this collection was created with --offset 1024; drop --offset or pass 1024');
    }
  });

  it('a query of another size is refused by its fit, without suggesting a --fit it would refuse', async () => {
    const small = writeImage(join(work, 'offset-4x4.png'), randomPixels(16), 4, 4);
    const run = await runCli(['query', small, ...d.flags()]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr.trim()).toBe(
      "fnn: offset-4x4.png: 4x4, but the collection's images are 8x8, and it refuses other sizes (it was created with --fit refuse)",
    );
  });

  it('an upload with another --offset is refused before anything is encrypted, naming 1024', async () => {
    const extra = writeImage(join(work, 'offset-extra.png'), randomPixels(W * H), W, H);
    const run = await runCli(['upload', extra, ...d.flags(), '--offset', '0']);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr.trim()).toBe('fnn: this collection was created with --offset 1024; drop --offset or pass 1024');
    expect((await c1Status(d)).records).toBe(3);
  });
});

describe('a collection created with --no-paper-layout', () => {
  const d = deployment('fast-only');
  const paperRows = () => {
    const db = new Database(d.db, { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM records WHERE pixels IS NOT NULL').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    const first = writeImage(join(work, 'fast-0.png'), randomPixels(W * H), W, H);
    const run = await runCli(['upload', first, ...d.flags(), '--no-paper-layout']);
    expect(run.code, run.stderr).toBe(0);
  });

  it('a re-upload without --no-paper-layout stores the packed layout only, as the collection was created', async () => {
    const next = writeImage(join(work, 'fast-1.png'), randomPixels(W * H), W, H);
    const run = await runCli(['upload', next, ...d.flags()]);
    expect(run.code, run.stderr).toBe(0);
    expect((await c1Status(d)).records).toBe(2);
    expect(paperRows()).toBe(0);
  });

  it('an upload asking for --paper-layout is refused at once, exit 2, naming the stored layout', async () => {
    const next = writeImage(join(work, 'fast-2.png'), randomPixels(W * H), W, H);
    const run = await runCli(['upload', next, ...d.flags(), '--paper-layout']);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr.trim()).toBe(
      'fnn: this collection was created with --no-paper-layout (it answers only --protocol fast); drop --paper-layout',
    );
    expect((await c1Status(d)).records).toBe(2);
  });
});

describe("a new collection's size", () => {
  const mixed = deployment('mixed');
  const sized = deployment('sized');

  it('is that of its first image actually stored: CT_small (refused) does not fix it, the 8 MR images are stored at 64x64', async () => {
    const dir = freshDir(join(work, 'mixed-images'));
    copyFileSync(join(TESTDATA, 'CT_small.dcm'), join(dir, 'CT_small.dcm')); // 128x128, Hounsfield units below 0 without --offset
    const mr = [
      'MR_small.dcm',
      'MR_small_RLE.dcm',
      'MR_small_bigendian.dcm',
      'MR_small_implicit.dcm',
      'MR_small_jp2klossless.dcm',
      'MR_small_jpeg_lossless_sv1_dcmtk.dcm',
      'MR_small_jpeg_lossless_sv6_dcmtk.dcm',
      'MR_small_jpeg_ls_lossless.dcm',
    ];
    for (const f of mr) copyFileSync(join(TESTDATA, f), join(dir, f));
    // --id-from file: the 8 are one instance in 8 encodings, so by SOP Instance UID they would be one record.
    const run = await runCli(['upload', dir, ...mixed.flags(), '--no-paper-layout', '--id-from', 'file', '--json']);
    expect(run.code, run.stderr).toBe(EXIT.invalid);
    const lines = jsonLines(run.stdout) as { id?: string; status?: string; error?: string }[];
    const byId = Object.fromEntries(lines.filter((l) => l.id).map((l) => [l.id, l]));
    for (const f of mr) expect(byId[f]?.status, f).toBe('stored');
    expect(byId['CT_small.dcm']).toMatchObject({ status: 'failed', error: expect.stringMatching(/CT_small\.dcm.*below 0/) });
    expect(lines.at(-1)).toMatchObject({ exitCode: EXIT.invalid, error: expect.stringMatching(/1 image was not uploaded/) });
    expect(await c1Status(mixed)).toMatchObject({ records: 8, width: 64, height: 64 });
  });

  it('is --size on its first upload, and a later query takes that size and the fit without the flags', async () => {
    const big = randomPixels(W * H);
    const image = writeImage(join(work, 'sized-8x8.png'), big, W, H);
    const run = await runCli(['upload', image, ...sized.flags(), '--size', '4x4', '--fit', 'crop']);
    expect(run.code, run.stderr).toBe(0);
    expect(await c1Status(sized)).toMatchObject({ records: 1, width: 4, height: 4, settings: { offset: 0, fit: 'crop' } });
    // The centre 4x4 of the 8x8 image.
    const centre = Array.from({ length: 16 }, (_, i) => big[(2 + Math.floor(i / 4)) * W + 2 + (i % 4)]);
    expect(Array.from(heldByC1(sized.db, keys)[0].pixels)).toEqual(centre);
    const same = await cliQuery([image, ...sized.flags()]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.result.results![0]).toMatchObject({ id: 'sized-8x8.png', distance: '0' });
    const other = await runCli(['query', image, ...sized.flags(), '--size', '8x8']);
    expect(other.code).toBe(EXIT.usage);
    expect(other.stderr.trim()).toBe("fnn: this collection's images are 4x4; drop --size or pass 4x4");
    const refuse = await runCli(['query', image, ...sized.flags(), '--fit', 'refuse']);
    expect(refuse.code).toBe(EXIT.usage);
    expect(refuse.stderr.trim()).toBe('fnn: this collection was created with --fit crop; drop --fit or pass crop');
  });
});
