import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cipherToBytes,
  FnnError,
  generateKeyPair,
  generateSymmetricKey,
  imageStats,
  RecordKey,
  type PublicKey,
} from '@fnn/shared';
import { RecordStore, type CollectionShape, type StoredRecord } from './storage';

// RecordStore against a real SQLite file: shape rules, transactions, replace,
// all-or-nothing delete, secure deletion on disk, key binding, snapshots.

let pk: PublicKey;
let recordKey: RecordKey;
let root: string;
const open: RecordStore[] = [];

beforeAll(async () => {
  ({ publicKey: pk } = await generateKeyPair(512));
  recordKey = new RecordKey(generateSymmetricKey());
  root = mkdtempSync(join(tmpdir(), 'fnn-storage-test-'));
});

afterAll(() => {
  for (const s of open.splice(0)) {
    try {
      s.close();
    } catch {
      // already closed by the test
    }
  }
  rmSync(root, { recursive: true, force: true });
});

const SHAPE_4x4: CollectionShape = { width: 4, height: 4, maxValue: 255 };
const SHAPE_5x5: CollectionShape = { width: 5, height: 5, maxValue: 255 };

let dbCounter = 0;
/** A fresh database file in its own directory (so its -wal / -shm files are easy to find). */
function freshPath(): string {
  const dir = mkdtempSync(join(root, `db${++dbCounter}-`));
  return join(dir, 'c1.db');
}

function openStore(path = freshPath(), fingerprint = pk.fingerprint()): RecordStore {
  const store = new RecordStore(path, fingerprint, pk.cipherBytes);
  open.push(store);
  return store;
}

interface TestRecord {
  id: string;
  image: Uint16Array;
  stored: StoredRecord;
}

function randomImage(d: number): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * 256));
}

function record(id: string, d: number, image = randomImage(d)): TestRecord {
  const stats = imageStats(image);
  return {
    id,
    image,
    stored: {
      lookupTag: recordKey.lookupTag(id),
      encryptedId: recordKey.encryptId(id),
      pixels: Array.from(image, (x) => pk.encrypt(BigInt(x))),
      sum: pk.encrypt(stats.sum),
      spread: pk.encrypt(stats.spread),
    },
  };
}

/** Runs fn, which must throw; returns what it threw. */
function thrown(fn: () => unknown, what: string): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what} was accepted, but it must be refused`);
}

function expectFnnError(error: unknown, kind: FnnError['kind'], what: string): void {
  expect(error instanceof FnnError, `${what}: expected an FnnError, got ${String(error)}`).toBe(true);
  expect((error as FnnError).kind, `${what}: wrong error kind (${(error as Error).message})`).toBe(kind);
}

/** Every byte SQLite keeps on disk for this database: the main file, the WAL and any other side file. */
function databaseBytes(path: string): Buffer {
  const dir = dirname(path);
  const name = basename(path);
  const files = readdirSync(dir).filter((f) => f === name || f.startsWith(`${name}-`));
  expect(files, 'the database file itself must exist').toContain(name);
  return Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
}

describe('RecordStore', () => {
  it('fixes the collection shape with the first upload', () => {
    const store = openStore();
    expect(store.shape(), 'a new database must have no shape yet').toBeUndefined();
    expect(store.count).toBe(0);
    const result = store.upsert(SHAPE_4x4, [record('a', 16).stored, record('b', 16).stored]);
    expect(result, 'two new records must be reported as stored, none replaced').toEqual({ stored: 2, replaced: 0 });
    expect(store.shape(), 'the first upload must fix width, height and pixel depth').toEqual(SHAPE_4x4);
    expect(store.count).toBe(2);
  });

  it('refuses an upload of another image size with invalid-input and stores nothing', () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [record('a', 16).stored]);
    const error = thrown(() => store.upsert(SHAPE_5x5, [record('b', 25).stored]), 'a 5x5 upload into a 4x4 collection');
    expectFnnError(error, 'invalid-input', 'a 5x5 upload into a 4x4 collection');
    expect(store.count, 'a refused upload must not store anything').toBe(1);
    expect(store.shape(), 'a refused upload must not change the shape').toEqual(SHAPE_4x4);
  });

  it('refuses an upload of another pixel depth with invalid-input and stores nothing', () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [record('a', 16).stored]);
    const error = thrown(
      () => store.upsert({ ...SHAPE_4x4, maxValue: 65535 }, [record('b', 16).stored]),
      'a 16-bit upload into an 8-bit collection',
    );
    expectFnnError(error, 'invalid-input', 'a 16-bit upload into an 8-bit collection');
    expect(store.count, 'a refused upload must not store anything').toBe(1);
  });

  it('refuses a wrong-size record that is the 2nd of one upsert call and stores neither record', () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [record('a', 16).stored]);
    const error = thrown(
      () => store.upsert(SHAPE_4x4, [record('b', 16).stored, record('c', 25).stored]),
      'an upsert whose 2nd record has 25 pixels in a 4x4 collection',
    );
    expectFnnError(error, 'invalid-input', 'an upsert whose 2nd record has 25 pixels in a 4x4 collection');
    expect(store.count, 'the valid 1st record of a refused upsert call must not be stored either').toBe(1);
  });

  it('refuses a wrong-size record in the first upload to an empty collection and leaves the shape unset', () => {
    const store = openStore();
    const error = thrown(
      () => store.upsert(SHAPE_4x4, [record('a', 16).stored, record('b', 25).stored]),
      'a first upload whose 2nd record has 25 pixels for a 4x4 shape',
    );
    expectFnnError(error, 'invalid-input', 'a first upload whose 2nd record has 25 pixels for a 4x4 shape');
    expect(store.count, 'nothing of a refused first upload may be stored').toBe(0);
    expect(store.shape(), 'a refused first upload must not fix the shape').toBeUndefined();
  });

  it('rolls back the whole upsert call when a later record fails to store', () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [record('a', 16).stored]);
    const broken = record('c', 16).stored;
    broken.pixels[3] = 1n << BigInt(8 * pk.cipherBytes); // one bit wider than a ciphertext: cannot be packed
    expect(() => store.upsert(SHAPE_4x4, [record('b', 16).stored, broken]), 'an unstorable record must fail').toThrow();
    expect(store.count, 'the 1st record of a failed upsert call must be rolled back').toBe(1);
  });

  it('replaces a record with an existing lookup tag in place and reports it as replaced', async () => {
    const store = openStore();
    const a = record('a', 16);
    const b = record('b', 16);
    const c = record('c', 16);
    store.upsert(SHAPE_4x4, [a.stored, b.stored, c.stored]);
    const newB = record('b', 16);
    const result = store.upsert(SHAPE_4x4, [newB.stored]);
    expect(result, 'an upsert with an existing lookup tag must be reported as 1 replaced, 0 stored').toEqual({
      stored: 0,
      replaced: 1,
    });
    expect(store.count, 'a replacement must not add a record').toBe(3);
    const snap = store.snapshot();
    const ids = Array.from({ length: snap.count }, (_, i) => recordKey.decryptId(snap.encryptedId(i)));
    expect(ids, 'a replaced record must keep its place in upload order (the tie rule depends on it)').toEqual([
      'a',
      'b',
      'c',
    ]);
    const position = ids.indexOf('b');
    expect(await snap.pixels(position), 'the replaced record must hold the new ciphertexts').toEqual(newB.stored.pixels);
    expect(snap.encryptedId(position).equals(newB.stored.encryptedId), 'the replaced record must hold the new E_k(ID)').toBe(
      true,
    );
  });

  it('deletes all or nothing: one unknown tag among known ones deletes none, with not-found', () => {
    const store = openStore();
    const a = record('a', 16);
    const b = record('b', 16);
    store.upsert(SHAPE_4x4, [a.stored, b.stored]);
    const error = thrown(
      () => store.delete([a.stored.lookupTag, recordKey.lookupTag('nobody'), b.stored.lookupTag]),
      'a delete naming an unknown record',
    );
    expectFnnError(error, 'not-found', 'a delete naming an unknown record');
    expect(store.count, 'a delete with an unknown tag must delete none of the known ones').toBe(2);
    expect(store.delete([a.stored.lookupTag, b.stored.lookupTag]), 'deleting two known records').toBe(2);
    expect(store.count).toBe(0);
  });

  it('removes the ciphertext bytes of a deleted record from the database file and the WAL', () => {
    const path = freshPath();
    const store = openStore(path);
    const keep = record('keep', 16);
    const gone = record('gone', 16);
    store.upsert(SHAPE_4x4, [keep.stored, gone.stored]);
    const goneProbe = Buffer.from(cipherToBytes(gone.stored.pixels[0], pk.cipherBytes)).subarray(0, 64);
    const keepProbe = Buffer.from(cipherToBytes(keep.stored.pixels[0], pk.cipherBytes)).subarray(0, 64);
    // Without this the test could pass vacuously (e.g. if the bytes were never where we look).
    expect(
      databaseBytes(path).includes(goneProbe),
      'before the delete the record\'s pixel bytes must be found in the database files, or this test proves nothing',
    ).toBe(true);
    expect(store.delete([gone.stored.lookupTag])).toBe(1);
    const after = databaseBytes(path);
    expect(after.includes(goneProbe), 'the deleted record\'s pixel ciphertext is still on disk (.db or -wal)').toBe(false);
    expect(after.includes(keepProbe), 'the record that was not deleted must still be on disk').toBe(true);
  });

  it('removes the old ciphertext bytes of a replaced record from the database file and the WAL', () => {
    const path = freshPath();
    const store = openStore(path);
    const old = record('a', 16);
    store.upsert(SHAPE_4x4, [old.stored, record('b', 16).stored]);
    const oldProbe = Buffer.from(cipherToBytes(old.stored.pixels[0], pk.cipherBytes)).subarray(0, 64);
    expect(
      databaseBytes(path).includes(oldProbe),
      'before the replacement the old pixel bytes must be found in the database files, or this test proves nothing',
    ).toBe(true);
    expect(store.upsert(SHAPE_4x4, [record('a', 16).stored])).toEqual({ stored: 0, replaced: 1 });
    expect(
      databaseBytes(path).includes(oldProbe),
      'the replaced record\'s old pixel ciphertext is still on disk (.db or -wal) after the replacement',
    ).toBe(false);
  });

  it('frees the collection shape when the last record is deleted', () => {
    const store = openStore();
    const a = record('a', 16);
    store.upsert(SHAPE_4x4, [a.stored]);
    store.delete([a.stored.lookupTag]);
    expect(store.count).toBe(0);
    expect(store.shape(), 'an empty collection must have no shape').toBeUndefined();
    const result = store.upsert(SHAPE_5x5, [record('b', 25).stored]);
    expect(result, 'after the last delete an image of another size must be accepted').toEqual({ stored: 1, replaced: 0 });
    expect(store.shape()).toEqual(SHAPE_5x5);
  });

  it('refuses to reopen a database with another key fingerprint, and reopens with the same one', () => {
    const path = freshPath();
    const first = openStore(path);
    first.upsert(SHAPE_4x4, [record('a', 16).stored]);
    first.close();
    const error = thrown(() => openStore(path, '0123456789abcdef'), 'opening the database under another key');
    expectFnnError(error, 'invalid-input', 'opening the database under another key');
    const again = openStore(path);
    expect(again.count, 'reopening with the right key must find the stored record').toBe(1);
    expect(again.shape()).toEqual(SHAPE_4x4);
  });

  it('gives a snapshot in upload order whose pixels and statistics round-trip exactly', async () => {
    const store = openStore();
    const records = ['r0', 'r1', 'r2', 'r3', 'r4'].map((id) => record(id, 16));
    store.upsert(SHAPE_4x4, [records[0].stored, records[1].stored]);
    store.upsert(SHAPE_4x4, [records[2].stored]);
    store.upsert(SHAPE_4x4, [records[3].stored, records[4].stored]);
    const snap = store.snapshot();
    expect(snap.count).toBe(5);
    expect(snap.dimension, 'the snapshot dimension must be width * height').toBe(16);
    const stats = await snap.stats();
    for (let i = 0; i < records.length; i++) {
      const r = records[i].stored;
      expect(recordKey.decryptId(snap.encryptedId(i)), `snapshot position ${i} is out of upload order`).toBe(records[i].id);
      expect(await snap.pixels(i), `pixels of ${records[i].id} did not round-trip exactly`).toEqual(r.pixels);
      expect(stats[i], `statistics of ${records[i].id} did not round-trip exactly`).toEqual({ sum: r.sum, spread: r.spread });
    }
  });

  it('passes SQLite\'s integrity check after uploads, replacements and deletes', () => {
    const store = openStore();
    const a = record('a', 16);
    store.upsert(SHAPE_4x4, [a.stored, record('b', 16).stored]);
    store.upsert(SHAPE_4x4, [record('a', 16).stored]);
    store.delete([a.stored.lookupTag]);
    expect(store.integrityCheck(), 'SQLite integrity_check must report ok').toBe('ok');
  });
});
