import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobToCiphers, decodePng, groupPlaintexts, openSealedImage, packingParams, plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import { cliQuery, INSECURE, makeKeys, randomPixels, runCliStreaming, startC1, startC2, writeImage, type Keys } from './testing/deployment';

// Fault: C1 dies (SIGKILL) in the middle of `fnn upload`, 20 times, at varied
// moments (after 0..7 of 10 records were reported stored, plus a random
// delay); a kill that comes after the upload finished does not count.
// Each time C1's database passes SQLite's integrity check and holds no
// partial record or group: every blob of every row has its exact length,
// every record is an image that was uploaded under its ID, every group with
// members has a version and packed columns, and those columns decrypt (C2's
// secret key) to exactly the packed plaintexts of its members' images
// (groupPlaintexts; checked on a few columns per group). Re-running the
// upload completes, and a query is exact.

const KILLS = 20;
const SIZE = 8;
const D = SIZE * SIZE;
const PER_UPLOAD = 10;
/** Pixel columns decrypted per group (of D), besides every embedding and coarse column and the three constants. */
const PIXEL_COLUMNS_CHECKED = [0, 1, D / 2, D - 1];

let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
const c1Db = () => join(work, 'c1.db');
/** What the collection holds once an upload completed: ID -> pixels, in first-upload order. */
const reference = new Map<string, Uint16Array>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-soak-c1-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, c1Db(), c2.address);
});

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => v === b[i]);

/**
 * Every row of C1's database whole: checked on the file, read-only, while C1
 * is dead. `batch` is the upload that was interrupted: a record may hold its
 * image or the one stored before (reference).
 */
function checkDatabase(what: string, batch: Map<string, Uint16Array>): number {
  const db = new Database(c1Db(), { readonly: true, fileMustExist: true });
  try {
    expect(db.pragma('integrity_check', { simple: true }), `${what}: PRAGMA integrity_check`).toBe('ok');
    const records = db.prepare('SELECT * FROM records').all() as Record<string, Buffer | number>[];
    const packed = db.prepare('SELECT * FROM packed_groups').all() as {
      grp: number;
      version: Buffer;
      pixels: Buffer;
      embedding: Buffer;
      coarse: Buffer;
      constants: Buffer;
    }[];
    if (records.length === 0) {
      expect(packed, `${what}: packed groups without records`).toEqual([]);
      return 0;
    }
    const facts = Object.fromEntries(
      (db.prepare('SELECT name, value FROM collection').all() as { name: string; value: string }[]).map((f) => [f.name, f.value]),
    );
    expect([facts.width, facts.height], `${what}: the collection's shape`).toEqual([String(SIZE), String(SIZE)]);
    const params = packingParams(Math.min(keys.pk.bits, keys.pk1.bits), SIZE, SIZE, Number(facts.max_value));
    const width = keys.pk.cipherBytes;
    const blocks = params.bound.dimension;
    const coarseBlocks = params.coarse.dimension;
    // The paper's layout is uploaded too (fnn upload's default).
    const length: Record<string, number> = { lookup_tag: 32, sum: width, spread: width, pixels: D * width };
    const groups = new Map<number, (Uint16Array | null)[]>();
    for (const r of records) {
      for (const [column, bytes] of Object.entries(length))
        expect((r[column] as Buffer).length, `${what}: record ${r.seq}: ${column} has a partial length`).toBe(bytes);
      expect((r.encrypted_id as Buffer).length, `${what}: record ${r.seq}: encrypted ID`).toBeGreaterThanOrEqual(29);
      expect((r.sealed_image as Buffer).length, `${what}: record ${r.seq}: sealed image`).toBeGreaterThanOrEqual(29);
      expect(r.slot as number, `${what}: record ${r.seq}: slot`).toBeLessThan(params.groupSize);
      // The record is an image uploaded under its ID: the interrupted upload's or the one stored before.
      const id = keys.recordKey.decryptId(r.encrypted_id as Buffer);
      expect(keys.recordKey.lookupTag(id).equals(r.lookup_tag as Buffer), `${what}: record ${r.seq}: lookup tag of ${id}`).toBe(true);
      const image = openSealedImage(keys.recordKey, r.sealed_image as Buffer);
      const known = [batch.get(id), reference.get(id)].filter((x): x is Uint16Array => x !== undefined);
      expect(
        known.some((k) => same(k, image.pixels)),
        `${what}: record ${r.seq} (${id}) is not an image uploaded under its ID`,
      ).toBe(true);
      const members = groups.get(r.grp as number) ?? new Array<Uint16Array | null>(params.groupSize).fill(null);
      members[r.slot as number] = image.pixels;
      groups.set(r.grp as number, members);
    }
    expect(
      packed.map((p) => p.grp).sort((a, b) => a - b),
      `${what}: packed groups are exactly the groups with members`,
    ).toEqual([...groups.keys()].sort((a, b) => a - b));
    const decrypt = (blob: Buffer, index: number) =>
      keys.sk.decrypt(blobToCiphers(blob.subarray(index * width, (index + 1) * width), width)[0]);
    for (const p of packed) {
      expect(p.version.length, `${what}: group ${p.grp}'s version`).toBe(16);
      expect(
        [p.pixels.length, p.embedding.length, p.coarse.length, p.constants.length],
        `${what}: group ${p.grp}'s packed columns have a partial length`,
      ).toEqual([D * width, blocks * width, coarseBlocks * width, 3 * width]);
      const want = groupPlaintexts(groups.get(p.grp)!, params);
      for (const i of PIXEL_COLUMNS_CHECKED)
        expect(decrypt(p.pixels, i), `${what}: group ${p.grp}'s packed pixel column ${i} is not its members' images`).toBe(want.pixels[i]);
      for (let i = 0; i < blocks; i++)
        expect(decrypt(p.embedding, i), `${what}: group ${p.grp}'s packed embedding column ${i}`).toBe(want.embedding[i]);
      for (let i = 0; i < coarseBlocks; i++)
        expect(decrypt(p.coarse, i), `${what}: group ${p.grp}'s packed coarse column ${i}`).toBe(want.coarseEmbedding[i]);
      expect(
        [decrypt(p.constants, 0), decrypt(p.constants, 1), decrypt(p.constants, 2)],
        `${what}: group ${p.grp}'s packed constants`,
      ).toEqual([want.distanceConstant, want.boundConstant, want.coarseConstant]);
    }
    return records.length;
  } finally {
    db.close();
  }
}

describe('C1 killed mid-upload', () => {
  it(`${KILLS} times: integrity_check ok, no partial record, the upload run again completes, and a query is exact`, async () => {
    const moments: string[] = [];
    let missed = 0;
    for (let attempt = 0; moments.length < KILLS; attempt++) {
      expect(missed, `the upload finished before the kill ${missed} times: kill earlier`).toBeLessThan(KILLS);
      const what = `kill ${moments.length + 1}`;
      // Two records replaced (same IDs, new images), the others new.
      const dir = join(work, `upload-${attempt}`);
      mkdirSync(dir);
      const batch = new Map<string, Uint16Array>();
      const ids = ['fixed-a.png', 'fixed-b.png', ...Array.from({ length: PER_UPLOAD - 2 }, (_, j) => `new-${attempt}-${j}.png`)];
      for (const id of ids) {
        const pixels = randomPixels(D);
        writeImage(join(dir, id), pixels, SIZE, SIZE);
        batch.set(id, pixels);
      }
      const afterLines = attempt % 8;
      const delayMs = afterLines === 0 ? 200 + Math.floor(Math.random() * 800) : Math.floor(Math.random() * 40);
      let seen = 0;
      // The C1 of this upload, not whatever `c1` holds when the timer fires: a
      // timer still pending when the upload finished would otherwise kill the
      // restarted C1 in the middle of the upload run again.
      const target = c1;
      let timer: NodeJS.Timeout | undefined;
      const schedule = () => {
        timer ??= setTimeout(() => void target.kill(), delayMs);
      };
      if (afterLines === 0) schedule();
      const args = ['upload', dir, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json'];
      const first = await runCliStreaming(args, (line) => {
        if (line.startsWith('{') && ['stored', 'replaced'].includes(JSON.parse(line).status)) seen++;
        if (seen >= afterLines) schedule();
      });
      clearTimeout(timer);
      await target.kill(); // in case the upload finished before the kill
      const stored = jsonLines(first.stdout).filter((l) => l.status === 'stored' || l.status === 'replaced').length;
      checkDatabase(`${what} (killed after ${stored} records, exit ${first.code})`, batch);
      if (stored === PER_UPLOAD) missed++;
      else {
        expect(
          first.code,
          `${what}: the interrupted upload must fail as unavailable: ${first.stderr}; ${jsonLines(first.stdout)
            .filter((l) => l.status === 'failed')
            .map((l) => `${l.id}: ${l.error}`)
            .join('; ')}`,
        ).toBe(5);
        moments.push(`${stored}`);
      }

      c1 = await startC1(keys, c1Db(), c2.address, c1.address);
      const again = await runCli(args);
      expect(again.code, `${what}: the upload run again: ${again.stderr}`).toBe(0);
      expect(
        jsonLines(again.stdout).filter((l) => l.status === 'stored' || l.status === 'replaced').length,
        `${what}: records stored on the 2nd run`,
      ).toBe(PER_UPLOAD);
      for (const [id, pixels] of batch) reference.set(id, pixels);
      expect(checkDatabase(`${what}, after the upload completed`, batch), `${what}: records at C1`).toBe(reference.size);

      const q = writeImage(join(work, `q-${attempt}.png`), randomPixels(D), SIZE, SIZE);
      const protocol = attempt % 2 === 0 ? 'fast' : 'fnn';
      const result = await cliQuery([
        q,
        '--c1',
        c1.address,
        '--c2',
        c2.address,
        '--keys',
        keys.dir,
        INSECURE,
        '--protocol',
        protocol,
        '--k',
        '2',
      ]);
      expect(result.code, `${what}: query (${protocol}): ${result.stderr}`).toBe(0);
      const want = plaintextNearest(
        [...reference].map(([id, pixels]) => ({ id, pixels })),
        decodePng(readFileSync(q), 'q').pixels,
        2,
      );
      expect(
        result.result.results!.map((r) => [r.id, r.distance]),
        `${what}: the ${protocol} query is not exact`,
      ).toEqual(want.map((w) => [w.id, w.distance.toString()]));
    }
    console.log(
      `C1 killed mid-upload ${KILLS} times (${missed} more after the upload had finished); records of ${PER_UPLOAD} reported stored before each kill: ${moments.join(' ')}`,
    );
  });
});
