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
  packColumns,
  packingParams,
  RecordKey,
  sealImage,
  unpack,
  type PackingParams,
  type PublicKey,
  type SecretKey,
  type SlotRecord,
} from '@fnn/shared';
import { RecordStore } from '@fnn/server-c1';
import { ReplicaStore, type ReplicaShape } from './replica-store';

// C2's replica of the packed records against a real SQLite file: store and
// replace (by tag and by slot), lenient delete, packed columns, the digest
// C2 compares with C1's, secure deletion on disk, key binding.

let pk1: PublicKey; // C1's key: the replica is under it
let sk1: SecretKey; // only to look inside the packed columns in tests
let pk2: PublicKey; // C2's key: C1's store, for the digest comparison
let otherKey: PublicKey;
let recordKey: RecordKey;
let root: string;
const open: { close(): void }[] = [];

beforeAll(async () => {
  ({ publicKey: pk1, secretKey: sk1 } = await generateKeyPair(512));
  ({ publicKey: pk2 } = await generateKeyPair(512));
  ({ publicKey: otherKey } = await generateKeyPair(512));
  recordKey = new RecordKey(generateSymmetricKey());
  root = mkdtempSync(join(tmpdir(), 'fnn-replica-test-'));
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

const SHAPE_4x4: ReplicaShape = { width: 4, height: 4, maxValue: 255 };
const SHAPE_5x5: ReplicaShape = { width: 5, height: 5, maxValue: 255 };
const paramsOf = (shape: ReplicaShape): PackingParams => packingParams(pk1.bits, shape.width, shape.height, shape.maxValue);
const G = () => paramsOf(SHAPE_4x4).groupSize;

let dbCounter = 0;
function freshPath(name = 'c2.db'): string {
  const dir = mkdtempSync(join(root, `db${++dbCounter}-`));
  return join(dir, name);
}

function openReplica(path = freshPath(), key = pk1): ReplicaStore {
  const store = new ReplicaStore(path, key);
  open.push(store);
  return store;
}

const randomImage = (d: number) => Uint16Array.from({ length: d }, () => Math.floor(Math.random() * 256));
const under = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));

interface TestRecord {
  id: string;
  tag: Buffer;
  image: Uint16Array;
  group: number;
  slot: number;
  /** C2's replica of the record (under pk1). */
  replica: SlotRecord;
  /** C1's replica (under pk2), for the stores that must agree. */
  forC1: SlotRecord;
}

/** One record's two slot records for position `at` (in group order) or a group and slot. */
async function record(
  id: string,
  at: number | { group: number; slot: number },
  options: { shape?: ReplicaShape; image?: Uint16Array } = {},
): Promise<TestRecord> {
  const shape = options.shape ?? SHAPE_4x4;
  const image = options.image ?? randomImage(shape.width * shape.height);
  const p = paramsOf(shape);
  const { group, slot } = typeof at === 'number' ? { group: Math.floor(at / p.groupSize), slot: at % p.groupSize } : at;
  const slots = await encryptSlotRecord(image, p, slot, under(pk2), under(pk1));
  return { id, tag: recordKey.lookupTag(id), image, group, slot, replica: slots.forC2, forC1: slots.forC1 };
}

function put(store: ReplicaStore, r: TestRecord, shape = SHAPE_4x4): void {
  store.store(shape, r.tag, r.group, r.slot, r.replica);
}

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
const pieces = (cs: bigint[]) => cs.map((c) => Buffer.from(cipherToBytes(c, pk1.cipherBytes)).subarray(8, 40));
const onDisk = (disk: Buffer, probes: Buffer | Buffer[]) => (Array.isArray(probes) ? probes : [probes]).some((b) => disk.includes(b));

/** The digest C2 must compute for a group holding these records (in their slots). */
function digestOf(members: TestRecord[]): string {
  const tags = new Array<GroupMember | null>(G()).fill(null);
  for (const m of members) tags[m.slot] = { tag: m.tag, version: m.replica.version };
  return groupDigest(tags);
}

/** The group's packed columns must be exactly the product of these members' slot ciphertexts. */
async function expectPackedGroup(store: ReplicaStore, group: number, members: TestRecord[], what: string) {
  const source = store.source();
  expect(await source.columns(group, 'distance', source.digest(group)!), `${what}: packed pixel columns of group ${group}`).toEqual(
    packColumns(pk1, members.map((m) => m.replica.pixels)),
  );
  expect(await source.columns(group, 'bound', source.digest(group)!), `${what}: packed embedding columns of group ${group}`).toEqual(
    packColumns(pk1, members.map((m) => m.replica.embedding)),
  );
  expect(source.digest(group), `${what}: digest of group ${group}`).toBe(digestOf(members));
}

describe('ReplicaStore', () => {
  it('works with 512-bit keys and 4x4 8-bit images in groups of at least 2', () => {
    expect(G()).toBeGreaterThanOrEqual(2);
  });

  it('stores records in their slots: count, packing, digests and packed columns', async () => {
    const store = openReplica();
    expect(store.count).toBe(0);
    expect(store.params(), 'an empty replica has no packing').toBeUndefined();
    expectFnnError(thrown(() => store.source(), 'the source of an empty replica'), 'invalid-input', 'empty replica');
    const records = await Promise.all(Array.from({ length: G() + 1 }, (_, i) => record(`r${i}`, i)));
    for (const r of records) put(store, r);
    expect(store.count).toBe(records.length);
    expect(store.params(), 'the packing follows from C1\'s key size and the shape').toEqual(paramsOf(SHAPE_4x4));
    await expectPackedGroup(store, 0, records.slice(0, G()), 'full group 0');
    await expectPackedGroup(store, 1, records.slice(G()), 'group 1 with one member');
    const source = store.source();
    expect(source.digest(2), 'a group without members has no digest').toBeUndefined();
    expectFnnError(await rejected(source.columns(2, 'distance', 'no-such-digest'), 'columns of an unknown group'), 'protocol-state', 'unknown group');
    // The packed column holds each member's pixel in its own slot.
    const column = (await source.columns(0, 'distance', source.digest(0)!))[3];
    expect(unpack(sk1.decrypt(column), paramsOf(SHAPE_4x4).slotBits, G())).toEqual(records.slice(0, G()).map((r) => BigInt(r.image[3])));
  });

  it('replaces by tag: same slot (new content) and another slot (the old slot is freed)', async () => {
    const store = openReplica();
    const a = await record('a', 0);
    const b = await record('b', 1);
    put(store, a);
    put(store, b);
    const newA = await record('a', 0);
    put(store, newA);
    expect(store.count, 'a replacement must not add a record').toBe(2);
    await expectPackedGroup(store, 0, [newA, b], 'after replacing a in place');
    const movedB = await record('b', { group: 1, slot: 2 });
    put(store, movedB);
    expect(store.count).toBe(2);
    await expectPackedGroup(store, 0, [newA], 'the group b left');
    await expectPackedGroup(store, 1, [movedB], 'the group b joined');
  });

  it('replaces by slot: another tag in a held slot evicts the record that held it', async () => {
    const store = openReplica();
    const a = await record('a', 0);
    const b = await record('b', 1);
    put(store, a);
    put(store, b);
    const c = await record('c', { group: 0, slot: a.slot });
    put(store, c);
    expect(store.count, 'the evicted record is gone, not kept beside the new one').toBe(2);
    await expectPackedGroup(store, 0, [c, b], 'after c took a\'s slot');
    expect(store.delete([a.tag]), 'the evicted record no longer exists').toBe(0);
    // A tag that moves into a slot held by another record: both the old slot and the holder go.
    const movedB = await record('b', { group: 0, slot: c.slot });
    put(store, movedB);
    expect(store.count).toBe(1);
    await expectPackedGroup(store, 0, [movedB], 'after b moved into c\'s slot');
  });

  it('ignores unknown tags on delete (C1 is the authority) and deletes the known ones', async () => {
    const store = openReplica();
    const a = await record('a', 0);
    const b = await record('b', 1);
    put(store, a);
    put(store, b);
    expect(store.delete([recordKey.lookupTag('nobody')]), 'an unknown tag deletes nothing and is no error').toBe(0);
    expect(store.delete([]), 'an empty delete is no error').toBe(0);
    expect(store.count).toBe(2);
    await expectPackedGroup(store, 0, [a, b], 'after deleting unknown tags');
    expect(store.delete([recordKey.lookupTag('nobody'), a.tag, a.tag]), 'known tags among unknown ones are deleted').toBe(1);
    expect(store.count).toBe(1);
    await expectPackedGroup(store, 0, [b], 'after deleting a');
  });

  it('drops a group whose last member is deleted, and forgets the shape when the replica is empty', async () => {
    const store = openReplica();
    const records = await Promise.all(Array.from({ length: G() + 1 }, (_, i) => record(`r${i}`, i)));
    for (const r of records) put(store, r);
    const last = records[G()];
    const before = store.source();
    const digestBefore1 = before.digest(1)!;
    store.delete([last.tag]);
    expect(store.source().digest(1), 'a group without members must disappear').toBeUndefined();
    expectFnnError(await rejected(before.columns(1, 'distance', digestBefore1), 'columns of a dropped group'), 'protocol-state', 'dropped group');
    await expectPackedGroup(store, 0, records.slice(0, G()), 'the untouched group');
    store.delete(records.slice(0, G()).map((r) => r.tag));
    expect(store.count).toBe(0);
    expect(store.params(), 'an empty replica has no shape').toBeUndefined();
    const other = await record('x', 0, { shape: SHAPE_5x5 });
    put(store, other, SHAPE_5x5);
    expect(store.params(), 'after the last delete another shape is accepted').toEqual(paramsOf(SHAPE_5x5));
  });

  it('refuses another shape, a slot outside the group and records of the wrong size, storing nothing', async () => {
    const store = openReplica();
    const a = await record('a', 0);
    put(store, a);
    const b = await record('b', 1);
    const cases: [string, () => void][] = [
      ['another image size (5x5 into 4x4)', () => store.store(SHAPE_5x5, b.tag, 0, 1, b.replica)],
      ['another pixel depth', () => store.store({ ...SHAPE_4x4, maxValue: 65535 }, b.tag, 0, 1, b.replica)],
      [`slot ${G()} in a group of ${G()}`, () => store.store(SHAPE_4x4, b.tag, 0, G(), b.replica)],
      ['15 of 16 pixels', () => store.store(SHAPE_4x4, b.tag, 0, 1, { ...b.replica, pixels: b.replica.pixels.slice(1) })],
      ['an embedding of the wrong length', () => store.store(SHAPE_4x4, b.tag, 0, 1, { ...b.replica, embedding: b.replica.embedding.slice(2) })],
      // A refused record in a held slot must not evict its holder either.
      ['a wrong-size record into a held slot', () => store.store(SHAPE_4x4, b.tag, 0, 0, { ...b.replica, pixels: [] })],
    ];
    for (const [what, run] of cases) {
      expectFnnError(thrown(run, what), 'invalid-input', what);
      expect(store.count, `${what}: nothing may be stored`).toBe(1);
      await expectPackedGroup(store, 0, [a], `after refusing ${what}`);
    }
    expect(store.params(), 'the shape is unchanged').toEqual(paramsOf(SHAPE_4x4));
    const empty = openReplica();
    expectFnnError(thrown(() => empty.store(SHAPE_4x4, b.tag, 0, G(), b.replica), 'first store, slot outside'), 'invalid-input', 'first store');
    expect(empty.params(), 'a refused first store must not fix the shape').toBeUndefined();
  });

  it('names the pixel depth when it refuses a record of another depth (the message reaches the owner)', async () => {
    const store = openReplica();
    put(store, await record('a', 0));
    const b = await record('b', 1);
    const error = thrown(() => store.store({ ...SHAPE_4x4, maxValue: 65535 }, b.tag, 0, 1, b.replica), 'a 16-bit record into an 8-bit replica');
    expectFnnError(error, 'invalid-input', 'a 16-bit record into an 8-bit replica');
    // C1 says "image pixel depth 65535 differs from the collection's 255"; C2 must not say "4x4 ... are 4x4".
    expect((error as Error).message, 'the refusal must name the pixel depths, not two equal sizes').toMatch(/depth|65535/);
  });

  it('gives the same group digests as C1 for the same tags in the same slots', async () => {
    const replica = openReplica();
    const c1 = new RecordStore(freshPath('c1.db'), pk2);
    open.push(c1);
    const g = G();
    // Slots out of upload order, a free slot in group 0, and a group 1 with a hole first.
    const records = await Promise.all([record('r0', 2), record('r1', 0), record('r2', g + 1), record('r3', g + 2)]);
    for (const r of records) {
      put(replica, r);
      const owner = await encryptRecord(under(pk2), recordKey, r.id, r.image);
      c1.upsert(SHAPE_4x4, [
        { ...owner, sealedImage: sealImage(recordKey, { ...SHAPE_4x4, pixels: r.image }), group: r.group, slot: r.slot, slotRecord: r.forC1 },
      ]);
    }
    const check = (what: string) => {
      const layout = c1.packedSnapshot().groups;
      const source = replica.source();
      expect(layout.length, what).toBeGreaterThan(0);
      for (const group of layout)
        expect(source.digest(group.group), `${what}: C2's digest of group ${group.group} differs from C1's`).toBe(group.digest);
    };
    check('after the uploads');
    c1.delete([records[1].tag]);
    replica.delete([records[1].tag]);
    check('after a delete on both');
    const r2 = records[2];
    c1.delete([r2.tag]);
    const atC1 = c1.packedSnapshot().groups.find((x) => x.group === r2.group);
    expect(atC1, 'the group keeps another member at C1').toBeDefined();
    expect(replica.source().digest(r2.group), 'a record deleted at C1 only must make the digests differ').not.toBe(atC1!.digest);
  });

  it('removes a deleted record\'s bytes from the database file and the WAL', async () => {
    const path = freshPath();
    const store = openReplica(path);
    const keep = await record('keep', 0);
    const gone = await record('gone', 1);
    put(store, keep);
    put(store, gone);
    const packedBefore = await store.source().columns(0, 'distance', store.source().digest(0)!);
    const goneProbes: [string, Buffer | Buffer[]][] = [
      ['slot pixel ciphertexts', pieces(gone.replica.pixels)],
      ['slot embedding ciphertexts', pieces(gone.replica.embedding)],
      ['lookup tag', gone.tag],
      ['packed columns that included it', pieces(packedBefore)],
    ];
    const before = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(before, bytes), `before the delete the record's ${what} must be found on disk, or this test proves nothing`).toBe(
        true,
      );
    expect(store.delete([gone.tag])).toBe(1);
    const after = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(after, bytes), `the deleted record's ${what} is still on disk (.db or -wal)`).toBe(false);
    expect(onDisk(after, pieces(keep.replica.pixels)), 'the record that was not deleted must still be on disk').toBe(true);
  });

  it('removes an evicted or replaced record\'s bytes from the database file and the WAL', async () => {
    const path = freshPath();
    const store = openReplica(path);
    const old = await record('a', 0);
    const evicted = await record('b', 1);
    put(store, old);
    put(store, evicted);
    const probes: [string, Buffer | Buffer[]][] = [
      ['replaced slot pixel ciphertexts', pieces(old.replica.pixels)],
      ['evicted slot pixel ciphertexts', pieces(evicted.replica.pixels)],
      ['evicted lookup tag', evicted.tag],
    ];
    const before = databaseBytes(path);
    for (const [what, bytes] of probes) expect(onDisk(before, bytes), `${what} must be on disk before, or this test proves nothing`).toBe(true);
    put(store, await record('a', 0));
    put(store, await record('c', 1));
    const after = databaseBytes(path);
    for (const [what, bytes] of probes) expect(onDisk(after, bytes), `the ${what} is still on disk (.db or -wal)`).toBe(false);
  });

  it('refuses to reopen a replica under another key of C1, and reopens under the same one', async () => {
    const path = freshPath();
    const first = openReplica(path);
    put(first, await record('a', 0));
    first.close();
    expectFnnError(thrown(() => openReplica(path, otherKey), 'opening the replica under another key'), 'invalid-input', 'another key');
    const again = openReplica(path);
    expect(again.count, 'reopening with the right key must find the stored record').toBe(1);
    expect(again.params()).toEqual(paramsOf(SHAPE_4x4));
  });
});
