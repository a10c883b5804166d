import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cipherToBytes,
  encryptRecord,
  encryptSlotRecord,
  FnnError,
  generateKeyPair,
  generateSymmetricKey,
  groupDigest,
  type GroupMember,
  openSealedImage,
  packColumns,
  packingParams,
  RecordKey,
  sealImage,
  unpack,
  type PackingParams,
  type PublicKey,
  type SecretKey,
} from '@fnn/shared';
import { RecordStore, type CollectionShape, type StoredRecord } from './storage';

// RecordStore against a real SQLite file: shape rules, transactions, replace,
// all-or-nothing delete, secure deletion on disk, key binding, snapshots, and
// the fast protocol's slots and packed groups.

let pk: PublicKey; // C2's key: everything C1 stores is under it
let sk: SecretKey; // only to look inside the packed columns in tests
let otherKey: PublicKey;
let recordKey: RecordKey;
let root: string;
const open: RecordStore[] = [];

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
  ({ publicKey: otherKey } = await generateKeyPair(512));
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
const paramsOf = (shape: CollectionShape): PackingParams => packingParams(pk.bits, shape.width, shape.height, shape.maxValue);
/** Records per group of a 4x4 8-bit collection at 512 bits (3; checked below). */
const G = () => paramsOf(SHAPE_4x4).groupSize;

let dbCounter = 0;
/** A fresh database file in its own directory (so its -wal / -shm files are easy to find). */
function freshPath(): string {
  const dir = mkdtempSync(join(root, `db${++dbCounter}-`));
  return join(dir, 'c1.db');
}

function openStore(path = freshPath(), key = pk): RecordStore {
  const store = new RecordStore(path, key);
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

const encrypt = async (values: bigint[]) => values.map((v) => pk.encrypt(v));
/** C2's replica (under C1's key) is not C1's business: its ciphertexts are not computed here. */
const notForC1 = async (values: bigint[]) => values.map(() => 0n);

/**
 * One record as the owner would upload it to C1: the paper's layout, the sealed
 * image, and the slot record for `at` (a position in group order, or a group
 * and slot), everything under pk.
 */
/** A record as a group digest names it: its lookup tag and upload version. */
const member = (r: TestRecord): GroupMember => ({ tag: r.stored.lookupTag, version: r.stored.slotRecord.version });

async function record(
  id: string,
  at: number | { group: number; slot: number },
  options: { shape?: CollectionShape; image?: Uint16Array } = {},
): Promise<TestRecord> {
  const shape = options.shape ?? SHAPE_4x4;
  const image = options.image ?? randomImage(shape.width * shape.height);
  const p = paramsOf(shape);
  const { group, slot } = typeof at === 'number' ? { group: Math.floor(at / p.groupSize), slot: at % p.groupSize } : at;
  const [owner, slots] = await Promise.all([
    encryptRecord(encrypt, recordKey, id, image),
    encryptSlotRecord(image, p, slot, encrypt, notForC1),
  ]);
  return {
    id,
    image,
    stored: {
      ...owner,
      sealedImage: sealImage(recordKey, { ...shape, pixels: image }),
      group,
      slot,
      slotRecord: slots.forC1,
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

async function rejected(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded, but it must fail`);
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

/**
 * 32-byte pieces of every ciphertext of a vector: a long blob spans SQLite
 * overflow pages, so one piece may be cut by a page header; the vector is on
 * disk if some piece is, and gone only if none is.
 */
const pieces = (cs: bigint[]) => cs.map((c) => Buffer.from(cipherToBytes(c, pk.cipherBytes)).subarray(8, 40));
const onDisk = (disk: Buffer, probes: Buffer | Buffer[]) => (Array.isArray(probes) ? probes : [probes]).some((b) => disk.includes(b));

/** The group's packed columns must be exactly the product of these members' slot ciphertexts. */
async function expectPackedGroup(store: RecordStore, group: number, members: TestRecord[], what: string) {
  const snap = store.packedSnapshot();
  const slots = members.map((m) => m.stored.slotRecord);
  const distance = await snap.columns(group, 'distance');
  const bound = await snap.columns(group, 'bound');
  expect(distance.columns, `${what}: packed pixel columns of group ${group}`).toEqual(packColumns(pk, slots.map((s) => s.pixels)));
  expect(bound.columns, `${what}: packed embedding columns of group ${group}`).toEqual(packColumns(pk, slots.map((s) => s.embedding)));
  expect(distance.constant, `${what}: packed distance constant of group ${group}`).toEqual(
    packColumns(pk, slots.map((s) => [s.distanceConstant!]))[0],
  );
  expect(bound.constant, `${what}: packed bound constant of group ${group}`).toEqual(
    packColumns(pk, slots.map((s) => [s.boundConstant!]))[0],
  );
}

/** The candidate numbers (upload order) of the snapshot, by record id. */
function candidatesById(store: RecordStore): Map<string, number> {
  const snap = store.packedSnapshot();
  return new Map(Array.from({ length: snap.count }, (_, i) => [recordKey.decryptId(snap.encryptedId(i)), i]));
}

describe('RecordStore', () => {
  it('works with 512-bit keys and 4x4 8-bit images in groups of at least 2', () => {
    expect(G(), 'the fast-protocol tests below need groups of 2 or more records').toBeGreaterThanOrEqual(2);
  });

  it('fixes the collection shape with the first upload', async () => {
    const store = openStore();
    expect(store.shape(), 'a new database must have no shape yet').toBeUndefined();
    expect(store.params(), 'a new database has no packing yet').toBeUndefined();
    expect(store.count).toBe(0);
    const result = store.upsert(SHAPE_4x4, [(await record('a', 0)).stored, (await record('b', 1)).stored]);
    expect(result, 'two new records must be reported as stored, none replaced').toEqual({ stored: 2, replaced: 0 });
    expect(store.shape(), 'the first upload must fix width, height and pixel depth').toEqual(SHAPE_4x4);
    expect(store.params(), 'the packing must follow from the key size and the shape').toEqual(paramsOf(SHAPE_4x4));
    expect(store.count).toBe(2);
  });

  it('refuses an upload of another image size with invalid-input and stores nothing', async () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [(await record('a', 0)).stored]);
    const b = await record('b', 1, { shape: SHAPE_5x5 });
    const error = thrown(() => store.upsert(SHAPE_5x5, [b.stored]), 'a 5x5 upload into a 4x4 collection');
    expectFnnError(error, 'invalid-input', 'a 5x5 upload into a 4x4 collection');
    expect(store.count, 'a refused upload must not store anything').toBe(1);
    expect(store.shape(), 'a refused upload must not change the shape').toEqual(SHAPE_4x4);
  });

  it('refuses an upload of another pixel depth with invalid-input and stores nothing', async () => {
    const store = openStore();
    store.upsert(SHAPE_4x4, [(await record('a', 0)).stored]);
    const b = await record('b', 1);
    const error = thrown(
      () => store.upsert({ ...SHAPE_4x4, maxValue: 65535 }, [b.stored]),
      'a 16-bit upload into an 8-bit collection',
    );
    expectFnnError(error, 'invalid-input', 'a 16-bit upload into an 8-bit collection');
    expect(store.count, 'a refused upload must not store anything').toBe(1);
  });

  it('refuses a wrong-size record that is the 2nd of one upsert call and stores neither record', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored]);
    const b = await record('b', 1);
    const c = await record('c', 2, { shape: SHAPE_5x5 });
    const error = thrown(
      () => store.upsert(SHAPE_4x4, [b.stored, c.stored]),
      'an upsert whose 2nd record has 25 pixels in a 4x4 collection',
    );
    expectFnnError(error, 'invalid-input', 'an upsert whose 2nd record has 25 pixels in a 4x4 collection');
    expect(store.count, 'the valid 1st record of a refused upsert call must not be stored either').toBe(1);
    await expectPackedGroup(store, 0, [a], 'after the refused upsert');
  });

  it('refuses a wrong-size record in the first upload to an empty collection and leaves the shape unset', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1, { shape: SHAPE_5x5 });
    const error = thrown(
      () => store.upsert(SHAPE_4x4, [a.stored, b.stored]),
      'a first upload whose 2nd record has 25 pixels for a 4x4 shape',
    );
    expectFnnError(error, 'invalid-input', 'a first upload whose 2nd record has 25 pixels for a 4x4 shape');
    expect(store.count, 'nothing of a refused first upload may be stored').toBe(0);
    expect(store.shape(), 'a refused first upload must not fix the shape').toBeUndefined();
  });

  it('refuses a packed slot record of the wrong size with invalid-input and stores nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored]);
    const short = await record('b', 1);
    short.stored.slotRecord = { ...short.stored.slotRecord, pixels: short.stored.slotRecord.pixels.slice(1) };
    const noEmbedding = await record('c', 2);
    noEmbedding.stored.slotRecord = { ...noEmbedding.stored.slotRecord, embedding: [] };
    for (const [what, r] of [
      ['a slot record with 15 of 16 pixels', short],
      ['a slot record without its embedding', noEmbedding],
    ] as const) {
      expectFnnError(thrown(() => store.upsert(SHAPE_4x4, [r.stored]), what), 'invalid-input', what);
      expect(store.count, `${what}: nothing may be stored`).toBe(1);
    }
    await expectPackedGroup(store, 0, [a], 'after the refused slot records');
  });

  it('rolls back the whole upsert call when a later record fails to store', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored]);
    const broken = (await record('c', 2)).stored;
    broken.pixels[3] = 1n << BigInt(8 * pk.cipherBytes); // one bit wider than a ciphertext: cannot be packed
    const b = await record('b', 1);
    expect(() => store.upsert(SHAPE_4x4, [b.stored, broken]), 'an unstorable record must fail').toThrow();
    expect(store.count, 'the 1st record of a failed upsert call must be rolled back').toBe(1);
    expect(store.allocateSlot(recordKey.lookupTag('b')), 'the rolled-back record must not hold its slot').toEqual({ group: 0, slot: 1 });
    await expectPackedGroup(store, 0, [a], 'after the rolled-back upsert');
  });

  it('replaces a record with an existing lookup tag in place and reports it as replaced', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1);
    const c = await record('c', 2);
    store.upsert(SHAPE_4x4, [a.stored, b.stored, c.stored]);
    const at = store.allocateSlot(b.stored.lookupTag);
    expect(at, 'a stored record is allocated its own slot again').toEqual({ group: 0, slot: 1 });
    const newB = await record('b', at);
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
    const packed = store.packedSnapshot();
    expect(packed.groups, 'the replaced record keeps its slot and its candidate number').toEqual([
      { group: 0, members: [0, 1, 2], digest: groupDigest([member(a), member(newB), member(c)]) },
    ]);
    expect(openSealedImage(recordKey, packed.sealedImage(position)).pixels, 'the sealed image must be the new one').toEqual(
      newB.image,
    );
    await expectPackedGroup(store, 0, [a, newB, c], 'after the replacement');
  });

  it('deletes all or nothing: one unknown tag among known ones deletes none, with not-found', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1);
    store.upsert(SHAPE_4x4, [a.stored, b.stored]);
    const error = thrown(
      () => store.delete([a.stored.lookupTag, recordKey.lookupTag('nobody'), b.stored.lookupTag]),
      'a delete naming an unknown record',
    );
    expectFnnError(error, 'not-found', 'a delete naming an unknown record');
    expect(store.count, 'a delete with an unknown tag must delete none of the known ones').toBe(2);
    await expectPackedGroup(store, 0, [a, b], 'after the refused delete');
    expect(store.delete([a.stored.lookupTag, b.stored.lookupTag]), 'deleting two known records').toBe(2);
    expect(store.count).toBe(0);
  });

  it('removes the ciphertext bytes of a deleted record from the database file and the WAL', async () => {
    const path = freshPath();
    const store = openStore(path);
    const keep = await record('keep', 0);
    const gone = await record('gone', 1);
    store.upsert(SHAPE_4x4, [keep.stored, gone.stored]);
    const packedBefore = (await store.packedSnapshot().columns(0, 'distance')).columns;
    const goneProbes: [string, Buffer | Buffer[]][] = [
      ['pixel ciphertexts', pieces(gone.stored.pixels)],
      ['sum and spread ciphertexts', pieces([gone.stored.sum, gone.stored.spread])],
      ['slot pixel ciphertexts', pieces(gone.stored.slotRecord.pixels)],
      ['slot embedding ciphertexts', pieces(gone.stored.slotRecord.embedding)],
      ['slot constants', pieces([gone.stored.slotRecord.distanceConstant!, gone.stored.slotRecord.boundConstant!])],
      ['sealed image', gone.stored.sealedImage.subarray(0, 64)],
      ['packed columns that included it', pieces(packedBefore)],
    ];
    const keepProbes: [string, Buffer | Buffer[]][] = [
      ['pixel ciphertexts', pieces(keep.stored.pixels)],
      ['slot pixel ciphertexts', pieces(keep.stored.slotRecord.pixels)],
    ];
    // Without this the test could pass vacuously (e.g. if the bytes were never where we look).
    const before = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(before, bytes), `before the delete the record's ${what} must be found on disk, or this test proves nothing`).toBe(
        true,
      );
    expect(store.delete([gone.stored.lookupTag])).toBe(1);
    const after = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(after, bytes), `the deleted record's ${what} is still on disk (.db or -wal)`).toBe(false);
    for (const [what, bytes] of keepProbes)
      expect(onDisk(after, bytes), `the ${what} of the record that was not deleted must still be on disk`).toBe(true);
  });

  it('removes the old ciphertext bytes of a replaced record from the database file and the WAL', async () => {
    const path = freshPath();
    const store = openStore(path);
    const old = await record('a', 0);
    store.upsert(SHAPE_4x4, [old.stored, (await record('b', 1)).stored]);
    const oldProbes: [string, Buffer | Buffer[]][] = [
      ['pixel ciphertexts', pieces(old.stored.pixels)],
      ['slot pixel ciphertexts', pieces(old.stored.slotRecord.pixels)],
      ['sealed image', old.stored.sealedImage.subarray(0, 64)],
    ];
    const before = databaseBytes(path);
    for (const [what, bytes] of oldProbes)
      expect(onDisk(before, bytes), `before the replacement the old ${what} must be found on disk, or this test proves nothing`).toBe(
        true,
      );
    expect(store.upsert(SHAPE_4x4, [(await record('a', 0)).stored])).toEqual({ stored: 0, replaced: 1 });
    const after = databaseBytes(path);
    for (const [what, bytes] of oldProbes)
      expect(onDisk(after, bytes), `the replaced record's old ${what} is still on disk (.db or -wal) after the replacement`).toBe(
        false,
      );
  });

  it('frees the collection shape when the last record is deleted', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored]);
    store.delete([a.stored.lookupTag]);
    expect(store.count).toBe(0);
    expect(store.shape(), 'an empty collection must have no shape').toBeUndefined();
    expect(store.params(), 'an empty collection must have no packing').toBeUndefined();
    expectFnnError(thrown(() => store.packedSnapshot(), 'a packed snapshot of an empty collection'), 'invalid-input', 'empty');
    const result = store.upsert(SHAPE_5x5, [(await record('b', 0, { shape: SHAPE_5x5 })).stored]);
    expect(result, 'after the last delete an image of another size must be accepted').toEqual({ stored: 1, replaced: 0 });
    expect(store.shape()).toEqual(SHAPE_5x5);
    expect(store.params(), 'the packing must follow the new shape').toEqual(paramsOf(SHAPE_5x5));
  });

  it('refuses to reopen a database with another key, and reopens with the same one', async () => {
    const path = freshPath();
    const first = openStore(path);
    first.upsert(SHAPE_4x4, [(await record('a', 0)).stored]);
    first.close();
    const error = thrown(() => openStore(path, otherKey), 'opening the database under another key');
    expectFnnError(error, 'invalid-input', 'opening the database under another key');
    const again = openStore(path);
    expect(again.count, 'reopening with the right key must find the stored record').toBe(1);
    expect(again.shape()).toEqual(SHAPE_4x4);
  });

  it('gives a snapshot in upload order whose pixels and statistics round-trip exactly', async () => {
    const store = openStore();
    const records = await Promise.all(['r0', 'r1', 'r2', 'r3', 'r4'].map((id, i) => record(id, i)));
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

  it('passes SQLite\'s integrity check after uploads, replacements and deletes', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored, (await record('b', 1)).stored]);
    store.upsert(SHAPE_4x4, [(await record('a', 0)).stored]);
    store.delete([a.stored.lookupTag]);
    expect(store.integrityCheck(), 'SQLite integrity_check must report ok').toBe('ok');
  });
});

describe('RecordStore: slots and packed groups (fast protocol)', () => {
  it('allocates the first free slot in group order, a stored tag its own slot, and reuses freed slots', async () => {
    const store = openStore();
    const tag = (id: string) => recordKey.lookupTag(id);
    const g = G();
    const records = await Promise.all(Array.from({ length: g + 2 }, (_, i) => record(`r${i}`, i)));
    expect(store.allocateSlot(records[0].stored.lookupTag), 'the first record of an empty collection goes to group 0, slot 0').toEqual({ group: 0, slot: 0 });
    for (const r of records) {
      expect(store.allocateSlot(r.stored.lookupTag), `${r.id} must be allocated the next free slot`).toEqual({
        group: r.stored.group,
        slot: r.stored.slot,
      });
      store.upsert(SHAPE_4x4, [r.stored]);
    }
    expect(store.allocateSlot(tag('new')), 'after G + 2 records the next slot is the 3rd of group 1').toEqual({ group: 1, slot: 2 });
    expect(store.allocateSlot(tag('new')), 'allocating again for the same ID: the same slot').toEqual({ group: 1, slot: 2 });
    for (const r of records)
      expect(store.allocateSlot(r.stored.lookupTag), `a stored record (${r.id}) must get its own slot back`).toEqual({
        group: r.stored.group,
        slot: r.stored.slot,
      });
    // Free group 0 slot 1 and group 1 slot 0: the earlier one in group order comes first.
    store.delete([records[g].stored.lookupTag, records[1].stored.lookupTag]);
    expect(store.allocateSlot(tag('new')), 'the first free slot in group order (a freed one)').toEqual({ group: 0, slot: 1 });
    const reuse = await record('new', store.allocateSlot(tag('new')));
    expect(store.upsert(SHAPE_4x4, [reuse.stored]), 'a freed slot can be filled again').toEqual({ stored: 1, replaced: 0 });
    expect(store.allocateSlot(tag('next')), 'then the other freed slot').toEqual({ group: 1, slot: 0 });
    expect(store.allocateSlot(records[1].stored.lookupTag), 'a deleted record is allocated like a new one: the next slot not reserved for another ID').toEqual({
      group: 1,
      slot: 2,
    });
  });

  it('reserves a slot it hands out, so two owners uploading at once get different slots; storing the record ends the reservation', async () => {
    const store = openStore();
    const tag = (id: string) => recordKey.lookupTag(id);
    const first = await record('first', 0);
    store.upsert(SHAPE_4x4, [first.stored]);
    const a = store.allocateSlot(tag('owner-a'));
    const b = store.allocateSlot(tag('owner-b'));
    expect([a, b], 'two IDs allocated before either is stored must get different slots').toEqual([
      { group: 0, slot: 1 },
      { group: 0, slot: 2 },
    ]);
    expect(store.allocateSlot(tag('owner-a')), 'the same ID gets its reserved slot again').toEqual(a);
    store.upsert(SHAPE_4x4, [(await record('owner-a', a)).stored]);
    store.delete([tag('owner-a')]);
    expect(store.allocateSlot(tag('owner-c')), 'a stored (then deleted) record no longer reserves its slot').toEqual(a);
  });

  it('refuses a record in a slot held by another tag with protocol-state and stores nothing', async () => {
    const store = openStore();
    const a = await record('a', { group: 0, slot: 0 });
    store.upsert(SHAPE_4x4, [a.stored]);
    const b = await record('b', { group: 0, slot: 1 });
    const intruder = await record('c', { group: 0, slot: 0 });
    const error = thrown(() => store.upsert(SHAPE_4x4, [b.stored, intruder.stored]), 'a record in a slot held by another record');
    expectFnnError(error, 'protocol-state', 'a record in a slot held by another record');
    expect((error as Error).message, 'the refusal must tell the owner to allocate again').toMatch(/allocate/);
    expect(store.count, 'nothing of the refused call may be stored (not even the valid 1st record)').toBe(1);
    expect(store.packedSnapshot().groups, 'the group layout must be unchanged').toEqual([
      { group: 0, members: [0, -1, -1], digest: groupDigest([member(a), null, null]) },
    ]);
    await expectPackedGroup(store, 0, [a], 'after the refused record');
    const twice = await record('d', { group: 0, slot: 2 });
    const twin = await record('e', { group: 0, slot: 2 });
    expectFnnError(
      thrown(() => store.upsert(SHAPE_4x4, [twice.stored, twin.stored]), 'two new records in one slot'),
      'protocol-state',
      'two new records of one upsert call in the same slot',
    );
    expect(store.count).toBe(1);
  });

  it('refuses a slot outside the group (slot >= group size) with invalid-input and stores nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    store.upsert(SHAPE_4x4, [a.stored]);
    const outside = await record('b', 1);
    outside.stored.slot = G();
    const error = thrown(() => store.upsert(SHAPE_4x4, [outside.stored]), `slot ${G()} in a group of ${G()}`);
    expectFnnError(error, 'invalid-input', 'a slot outside the group');
    expect(store.count).toBe(1);
    const first = await record('c', 1);
    first.stored.slot = G();
    const empty = openStore();
    expectFnnError(thrown(() => empty.upsert(SHAPE_4x4, [first.stored]), 'slot outside the group, first upload'), 'invalid-input', 'first upload');
    expect(empty.count).toBe(0);
    expect(empty.shape(), 'a refused first upload must not fix the shape').toBeUndefined();
  });

  it('gives packed layouts with members per slot as upload-order candidates and the digest of the tags', async () => {
    const store = openStore();
    const g = G();
    // Uploaded in this order, into slots out of group order.
    const r0 = await record('r0', 2);
    const r1 = await record('r1', 0);
    const r2 = await record('r2', g + 1);
    const r3 = await record('r3', 1);
    store.upsert(SHAPE_4x4, [r0.stored, r1.stored]);
    store.upsert(SHAPE_4x4, [r2.stored]);
    store.upsert(SHAPE_4x4, [r3.stored]);
    const snap = store.packedSnapshot();
    expect(snap.params).toEqual(paramsOf(SHAPE_4x4));
    expect(snap.count).toBe(4);
    const free = <T>(n: number, fill: T) => new Array<T>(n).fill(fill);
    const members0 = free(g, -1);
    members0[0] = 1;
    members0[1] = 3;
    members0[2] = 0;
    const tags0 = free<GroupMember | null>(g, null);
    tags0[0] = member(r1);
    tags0[1] = member(r3);
    tags0[2] = member(r0);
    const members1 = free(g, -1);
    members1[1] = 2;
    const tags1 = free<GroupMember | null>(g, null);
    tags1[1] = member(r2);
    expect(snap.groups, 'groups in order, each slot naming its record by upload order (-1: free)').toEqual([
      { group: 0, members: members0, digest: groupDigest(tags0) },
      { group: 1, members: members1, digest: groupDigest(tags1) },
    ]);
    const byCandidate = [r0, r1, r2, r3];
    byCandidate.forEach((r, candidate) => {
      expect(recordKey.decryptId(snap.encryptedId(candidate)), `candidate ${candidate}'s E_k(ID)`).toBe(r.id);
      const image = openSealedImage(recordKey, snap.sealedImage(candidate));
      expect(image, `candidate ${candidate}'s sealed image`).toEqual({ ...SHAPE_4x4, pixels: r.image });
    });
    await expectPackedGroup(store, 0, [r1, r3, r0], 'group 0');
    await expectPackedGroup(store, 1, [r2], 'group 1');
    // The packed column holds each member's value in its own slot and nothing elsewhere.
    const column = (await snap.columns(0, 'distance')).columns[5];
    expect(unpack(sk.decrypt(column), snap.params.slotBits, g)).toEqual([r1, r3, r0].map((r) => BigInt(r.image[5])));
    expectFnnError(await rejected(snap.columns(7, 'distance'), 'columns of a group that does not exist'), 'protocol-state', 'unknown group');
  });

  it('recomputes a group from its remaining members after a delete, and drops a group whose last member goes', async () => {
    const store = openStore();
    const g = G();
    const records = await Promise.all(Array.from({ length: g + 1 }, (_, i) => record(`r${i}`, i)));
    store.upsert(SHAPE_4x4, records.map((r) => r.stored));
    const [first, middle, ...rest] = records;
    const last = rest.pop()!; // alone in group 1
    const before = store.packedSnapshot();
    expect(before.groups.map((x) => x.group)).toEqual([0, 1]);

    expect(store.delete([middle.stored.lookupTag])).toBe(1);
    const remaining = [first, ...rest];
    await expectPackedGroup(store, 0, remaining, 'group 0 after deleting its 2nd member');
    const snap = store.packedSnapshot();
    const members = new Array<number>(g).fill(-1);
    const tags = new Array<GroupMember | null>(g).fill(null);
    const candidates = candidatesById(store);
    for (const r of remaining) {
      members[r.stored.slot] = candidates.get(r.id)!;
      tags[r.stored.slot] = member(r);
    }
    expect(snap.groups[0], 'the deleted slot is free, the others renumbered in upload order').toEqual({
      group: 0,
      members,
      digest: groupDigest(tags),
    });
    const column = (await snap.columns(0, 'distance')).columns[0];
    const slotValues = unpack(sk.decrypt(column), snap.params.slotBits, g);
    expect(slotValues[middle.stored.slot], 'the deleted record\'s slot must hold 0: its data is gone, not masked').toBe(0n);

    expect(store.delete([last.stored.lookupTag])).toBe(1);
    expect(store.packedSnapshot().groups.map((x) => x.group), 'a group without members must disappear').toEqual([0]);
    expectFnnError(
      await rejected(before.columns(1, 'distance'), 'the columns of a group deleted since the snapshot'),
      'protocol-state',
      'a group that disappeared during a query',
    );
    expect(store.allocateSlot(recordKey.lookupTag('new')), 'the freed slot in group 0 comes before the dropped group').toEqual({
      group: 0,
      slot: middle.stored.slot,
    });
  });

  it('repacks both groups when a replacement moves a record to another slot', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1);
    store.upsert(SHAPE_4x4, [a.stored, b.stored]);
    const moved = await record('a', { group: 1, slot: 0 });
    expect(store.upsert(SHAPE_4x4, [moved.stored])).toEqual({ stored: 0, replaced: 1 });
    await expectPackedGroup(store, 0, [b], 'the group the record left');
    await expectPackedGroup(store, 1, [moved], 'the group the record joined');
    const snap = store.packedSnapshot();
    expect(snap.groups.map((x) => x.members), 'the record keeps its candidate number in its new slot').toEqual([
      [-1, 1, ...new Array<number>(G() - 2).fill(-1)],
      [0, ...new Array<number>(G() - 1).fill(-1)],
    ]);
  });
});
