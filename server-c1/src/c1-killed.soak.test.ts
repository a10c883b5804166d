import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobToCiphers, decodePng, packColumns, packingParams, plaintextNearest } from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from '../../client/src/harness';
import { cliQuery, makeKeys, randomPixels, runCliStreaming, startC1, startC2, writeImage, type Keys } from '../../client/src/testing/deployment';

// Fault: C1 dies (SIGKILL) in the middle of `fnn upload`, 20 times, at varied
// moments (after 0..7 of 10 records were reported stored, plus a random
// delay); a kill that comes after the upload finished does not count.
// Each time C1's database passes SQLite's integrity check, holds no partial
// record (every blob of every row has its exact length, every group's packed
// columns are the product of its members), re-running the upload completes,
// and a query is exact.

const KILLS = 20;
const SIZE = 8;
const D = SIZE * SIZE;
const PER_UPLOAD = 10;

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

/** Every row of C1's database whole: checked on the file, read-only, while C1 is dead. */
function checkDatabase(what: string): number {
  const db = new Database(c1Db(), { readonly: true, fileMustExist: true });
  try {
    expect(db.pragma('integrity_check', { simple: true }), `${what}: PRAGMA integrity_check`).toBe('ok');
    const records = db.prepare('SELECT * FROM records').all() as Record<string, Buffer | number>[];
    if (records.length === 0) return 0;
    const facts = Object.fromEntries((db.prepare('SELECT name, value FROM collection').all() as { name: string; value: string }[]).map((f) => [f.name, f.value]));
    expect([facts.width, facts.height], `${what}: the collection's shape`).toEqual([String(SIZE), String(SIZE)]);
    const params = packingParams(keys.pk.bits, SIZE, SIZE, Number(facts.max_value));
    const width = keys.pk.cipherBytes;
    const blocks = 2 * params.blockRows * params.blockCols;
    const length: Record<string, number> = {
      lookup_tag: 32,
      sum: width,
      spread: width,
      pixels: D * width,
      slot_pixels: D * width,
      slot_embedding: blocks * width,
      slot_constants: 2 * width,
      slot_version: 16,
    };
    const groups = new Map<number, Record<string, Buffer | number>[]>();
    for (const r of records) {
      for (const [column, bytes] of Object.entries(length))
        expect((r[column] as Buffer).length, `${what}: record ${r.seq}: ${column} has a partial length`).toBe(bytes);
      expect((r.encrypted_id as Buffer).length, `${what}: record ${r.seq}: encrypted ID`).toBeGreaterThanOrEqual(29);
      expect((r.sealed_image as Buffer).length, `${what}: record ${r.seq}: sealed image`).toBeGreaterThanOrEqual(29);
      expect(r.slot as number, `${what}: record ${r.seq}: slot`).toBeLessThan(params.groupSize);
      groups.set(r.grp as number, [...(groups.get(r.grp as number) ?? []), r]);
    }
    const packed = db.prepare('SELECT * FROM packed_groups').all() as { grp: number; pixels: Buffer; embedding: Buffer; constants: Buffer }[];
    expect(packed.map((p) => p.grp).sort(), `${what}: packed groups are exactly the groups with members`).toEqual([...groups.keys()].sort());
    const product = (members: Record<string, Buffer | number>[], column: string) =>
      packColumns(keys.pk, members.map((m) => blobToCiphers(m[column] as Buffer, width)));
    for (const p of packed) {
      const members = groups.get(p.grp)!;
      expect(blobToCiphers(p.pixels, width), `${what}: group ${p.grp}'s packed pixels are not its members' product`).toEqual(product(members, 'slot_pixels'));
      expect(blobToCiphers(p.embedding, width), `${what}: group ${p.grp}'s packed embedding`).toEqual(product(members, 'slot_embedding'));
      expect(blobToCiphers(p.constants, width), `${what}: group ${p.grp}'s packed constants`).toEqual(product(members, 'slot_constants'));
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
      let scheduled = false;
      const schedule = () => {
        if (scheduled) return;
        scheduled = true;
        setTimeout(() => void c1.kill(), delayMs);
      };
      if (afterLines === 0) schedule();
      const args = ['upload', dir, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, '--json'];
      const first = await runCliStreaming(args, (line) => {
        if (line.startsWith('{') && ['stored', 'replaced'].includes(JSON.parse(line).status)) seen++;
        if (seen >= afterLines) schedule();
      });
      await c1.kill(); // in case the upload finished before the kill
      const stored = jsonLines(first.stdout).filter((l) => l.status === 'stored' || l.status === 'replaced').length;
      checkDatabase(`${what} (killed after ${stored} records, exit ${first.code})`);
      if (stored === PER_UPLOAD) missed++;
      else {
        expect(first.code, `${what}: the interrupted upload must fail as unavailable: ${first.stderr}`).toBe(5);
        moments.push(`${stored}`);
      }

      c1 = await startC1(keys, c1Db(), c2.address, c1.address);
      const again = await runCli(args);
      expect(again.code, `${what}: the upload run again: ${again.stderr}`).toBe(0);
      expect(jsonLines(again.stdout).filter((l) => l.status === 'stored' || l.status === 'replaced').length, `${what}: records stored on the 2nd run`).toBe(PER_UPLOAD);
      for (const [id, pixels] of batch) reference.set(id, pixels);
      expect(checkDatabase(`${what}, after the upload completed`), `${what}: records at C1`).toBe(reference.size);

      const q = writeImage(join(work, `q-${attempt}.png`), randomPixels(D), SIZE, SIZE);
      const protocol = attempt % 2 === 0 ? 'fast' : 'fnn';
      const result = await cliQuery([q, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, '--protocol', protocol, '--k', '2']);
      expect(result.code, `${what}: query (${protocol}): ${result.stderr}`).toBe(0);
      const want = plaintextNearest([...reference].map(([id, pixels]) => ({ id, pixels })), decodePng(readFileSync(q), 'q').pixels, 2);
      expect(result.result.results!.map((r) => [r.id, r.distance]), `${what}: the ${protocol} query is not exact`).toEqual(
        want.map((w) => [w.id, w.distance.toString()]),
      );
    }
    console.log(`C1 killed mid-upload ${KILLS} times (${missed} more after the upload had finished); records of ${PER_UPLOAD} reported stored before each kill: ${moments.join(' ')}`);
  });
});
