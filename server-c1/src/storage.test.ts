import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encryptGroup,
  encryptRecord,
  FnnError,
  groupDigest,
  groupPlaintexts,
  newGroupVersion,
  openSealedImage,
  packingParams,
  type RecordKey,
  sealImage,
  unpack,
  type Family,
  type Layout,
  type PackedRecordSource,
  type PackingParams,
  type PublicKey,
  type SecretKey,
} from '@fnn/shared';
// What a store keeps on disk, and the refusals and set-up every store test shares.
import { cipherPieces, ciphersOf, databaseBytes, onDisk } from '@fnn/server-common/testing';
import { expectFnnError, groupChangeSteps, rejected, ScratchDatabases, storeTestKeys, thrown } from '@fnn/server-common/testing';
import { SCHEMA_VERSION } from './schema';
import { RecordStore, type CollectionShape, type GroupChange, type StoredRecord } from './storage';

// RecordStore against a real SQLite file: the collection's shape (with or
// without the paper's layout), whole-group changes with optimistic concurrency,
// replace, all-or-nothing delete, secure deletion on disk, key binding,
// snapshots, slot allocation and the packed groups of the fast protocol.

let pk: PublicKey; // C2's key: everything C1 stores is under it
let sk: SecretKey; // only to look inside the packed columns in tests
let otherKey: PublicKey;
let recordKey: RecordKey;
const scratch = new ScratchDatabases('fnn-storage-test-');

beforeAll(async () => ({ key: pk, secret: sk, otherKey, recordKey } = await storeTestKeys()));

afterAll(() => scratch.cleanUp());

/** A collection with the paper's per-pixel layout (fnn, bf and fast). */
/** A group's columns as ciphertexts: the snapshot hands out the stored bytes. */
async function columnsOf(snap: PackedRecordSource, group: number, family: Family) {
  const { columns, constant } = await snap.columns(group, family);
  return { columns: ciphersOf(columns), constant };
}

const WITH_PAPER: Layout[] = ['packed', 'paper'];
const PACKED_ONLY: Layout[] = ['packed'];
const SHAPE_4x4: CollectionShape = { width: 4, height: 4, maxValue: 255, layouts: WITH_PAPER };
/** The same images uploaded for the fast protocol only. */
const FAST_4x4: CollectionShape = { ...SHAPE_4x4, layouts: PACKED_ONLY };
const SHAPE_5x5: CollectionShape = { width: 5, height: 5, maxValue: 255, layouts: WITH_PAPER };
/** What allocateSlots is asked with: the image shape, no layout. */
const sizeOf = ({ width, height, maxValue }: CollectionShape) => ({ width, height, maxValue });
const paramsOf = (shape: Pick<CollectionShape, 'width' | 'height' | 'maxValue'>): PackingParams =>
  packingParams(pk.bits, shape.width, shape.height, shape.maxValue);
/** Records per group of a 4x4 8-bit collection at 512 bits (3; checked below). */
const G = () => paramsOf(SHAPE_4x4).groupSize;

/** A fresh database file in its own directory (so its -wal / -shm files are easy to find). */
const freshPath = (): string => scratch.path('c1.db');

function openStore(path = freshPath(), key = pk): RecordStore {
  return scratch.track(new RecordStore(path, key));
}

interface TestRecord {
  id: string;
  image: Uint16Array;
  stored: StoredRecord;
}

const randomImage = (d: number) => Uint16Array.from({ length: d }, () => Math.floor(Math.random() * 256));
const encrypt = async (values: bigint[]) => values.map((v) => pk.encrypt(v));
/** C2's replica (under C1's key) is not C1's business: its ciphertexts are not computed here. */
const notForC1 = async (values: bigint[]) => values.map(() => 0n);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * One record as the owner uploads it to C1 for slot `slot` of its group: the
 * sealed image and identifier, and the paper's layout when the shape has it
 * (or `paper` says so), everything under pk.
 */
async function record(
  id: string,
  slot: number,
  options: { shape?: CollectionShape; image?: Uint16Array; paper?: boolean } = {},
): Promise<TestRecord> {
  const shape = options.shape ?? SHAPE_4x4;
  const image = options.image ?? randomImage(shape.width * shape.height);
  const owner = await encryptRecord(recordKey, id, image, (options.paper ?? shape.layouts.includes('paper')) ? encrypt : undefined);
  return {
    id,
    image,
    stored: { ...owner, sealedImage: sealImage(recordKey, { ...sizeOf(shape), pixels: image }), slot },
  };
}

/** Images by slot (null: free) of a group holding these records. */
function slotsOf(members: TestRecord[], groupSize = G()): (Uint16Array | null)[] {
  const slots = new Array<Uint16Array | null>(groupSize).fill(null);
  for (const m of members) slots[m.stored.slot] = m.image;
  return slots;
}

/** Tags by slot (null: free), as a group digest names them. */
function tagsOf(members: TestRecord[], groupSize = G()): (Buffer | null)[] {
  const tags = new Array<Buffer | null>(groupSize).fill(null);
  for (const m of members) tags[m.stored.slot] = m.stored.lookupTag;
  return tags;
}

/**
 * The change the owner computes for `group`: it reads the group (version and
 * members' sealed images) from the store, takes out the members tagged
 * `removed`, puts `records` into their slots and re-encrypts the whole group.
 */
async function changeFor(
  store: RecordStore,
  group: number,
  records: TestRecord[],
  options: { shape?: CollectionShape; removed?: Buffer[] } = {},
): Promise<GroupChange> {
  const p = paramsOf(options.shape ?? SHAPE_4x4);
  const current = store.group(group);
  const slots = new Array<Uint16Array | null>(p.groupSize).fill(null);
  for (const m of current.members)
    if (!(options.removed ?? []).some((t) => t.equals(m.lookupTag))) slots[m.slot] = openSealedImage(recordKey, m.sealedImage).pixels;
  for (const r of records) slots[r.stored.slot] = r.image;
  const columns = slots.some((s) => s !== null) ? (await encryptGroup(slots, p, encrypt, notForC1)).forC1 : undefined;
  return { group, baseVersion: current.version, version: newGroupVersion(), columns };
}

/** Upload records into one group as the owner does: read the group, re-encrypt it, send the change. */
async function upload(store: RecordStore, group: number, records: TestRecord[], shape = SHAPE_4x4) {
  const change = await changeFor(store, group, records, { shape });
  return {
    result: store.upsertGroup(
      shape,
      change,
      records.map((r) => r.stored),
    ),
    change,
  };
}

/** Delete records as the owner does: find their groups, re-encrypt each group without them, send all. */
async function remove(store: RecordStore, tags: Buffer[]): Promise<number> {
  const shape = store.shape()!;
  const places = store.allocateSlots(sizeOf(shape), tags);
  const groups = [...new Set(places.filter((p) => p.stored).map((p) => p.group))];
  const changes = await Promise.all(groups.map((g) => changeFor(store, g, [], { shape, removed: tags })));
  return store.delete(tags, changes);
}

/** Everything a refused call must leave as it was: shape, count, every group's version, members and raw columns. */
async function stateOf(store: RecordStore) {
  const shape = store.shape();
  const count = store.count;
  if (count === 0) return { shape, count };
  const snap = store.packedSnapshot();
  const groups = await Promise.all(
    snap.groups.map(async (g) => {
      const { version, members } = store.group(g.group);
      const distance = await columnsOf(snap, g.group, 'distance');
      const bound = await columnsOf(snap, g.group, 'bound');
      const coarse = await columnsOf(snap, g.group, 'coarse');
      return {
        ...g,
        version: hex(version),
        members: members.map((m) => ({ slot: m.slot, tag: hex(m.lookupTag), sealed: hex(m.sealedImage) })),
        distance,
        bound,
        coarse,
      };
    }),
  );
  return { shape, count, groups };
}

async function expectUnchanged(store: RecordStore, before: Awaited<ReturnType<typeof stateOf>>, what: string) {
  expect(await stateOf(store), `${what}: a refused call must store nothing (count, members, versions, packed columns)`).toEqual(before);
  expect(store.integrityCheck(), `${what}: SQLite integrity_check`).toBe('ok');
}

/**
 * The group's packed columns must decrypt to exactly the packed plaintexts of
 * these members in their slots, its digest must name its version and their
 * tags, and group() must give them back with their sealed images.
 */
async function expectPackedGroup(store: RecordStore, group: number, members: TestRecord[], what: string) {
  const p = store.params()!;
  const want = groupPlaintexts(slotsOf(members, p.groupSize), p);
  const snap = store.packedSnapshot();
  const distance = await columnsOf(snap, group, 'distance');
  const bound = await columnsOf(snap, group, 'bound');
  const coarse = await columnsOf(snap, group, 'coarse');
  expect(
    distance.columns.map((c) => sk.decrypt(c)),
    `${what}: packed pixel columns of group ${group}`,
  ).toEqual(want.pixels);
  expect(
    bound.columns.map((c) => sk.decrypt(c)),
    `${what}: packed embedding columns of group ${group}`,
  ).toEqual(want.embedding);
  expect(sk.decrypt(distance.constant), `${what}: packed distance constant of group ${group}`).toBe(want.distanceConstant);
  expect(sk.decrypt(bound.constant), `${what}: packed bound constant of group ${group}`).toBe(want.boundConstant);
  expect(
    coarse.columns.map((c) => sk.decrypt(c)),
    `${what}: packed coarse columns of group ${group}`,
  ).toEqual(want.coarseEmbedding);
  expect(sk.decrypt(coarse.constant), `${what}: packed coarse constant of group ${group}`).toBe(want.coarseConstant);
  const { version, members: stored } = store.group(group);
  expect(version.length, `${what}: group ${group} must have a 16-byte version`).toBe(16);
  expect(snap.groups.find((x) => x.group === group)?.digest, `${what}: digest of group ${group}`).toBe(
    groupDigest(version, tagsOf(members, p.groupSize)),
  );
  const bySlot = [...members].sort((a, b) => a.stored.slot - b.stored.slot);
  expect(
    stored.map((m) => ({ slot: m.slot, tag: hex(m.lookupTag), image: openSealedImage(recordKey, m.sealedImage).pixels })),
    `${what}: group(${group}) must list its members in slot order with their sealed images`,
  ).toEqual(bySlot.map((m) => ({ slot: m.stored.slot, tag: hex(m.stored.lookupTag), image: m.image })));
}

/** The candidate numbers (upload order) of the packed snapshot, by record id. */
function candidatesById(store: RecordStore): Map<string, number> {
  const snap = store.packedSnapshot();
  return new Map(Array.from({ length: snap.count }, (_, i) => [recordKey.decryptId(snap.encryptedId(i)), i]));
}

describe('RecordStore: the collection shape', () => {
  it('works with 512-bit keys and 4x4 8-bit images in groups of at least 3', () => {
    expect(G(), 'the tests below need groups of 3 or more records').toBeGreaterThanOrEqual(3);
  });

  it('fixes width, height, pixel depth and the paper layout with the first upload', async () => {
    const store = openStore();
    expect(store.shape(), 'a new database must have no shape yet').toBeUndefined();
    expect(store.params(), 'a new database has no packing yet').toBeUndefined();
    expect(store.count).toBe(0);
    expect(store.group(0), 'an empty group has an empty version and no members').toEqual({ version: Buffer.alloc(0), members: [] });
    const { result } = await upload(store, 0, [await record('a', 0), await record('b', 1)]);
    expect(result, 'two new records must be reported as stored, none replaced').toEqual({ stored: 2, replaced: 0 });
    expect(store.shape(), 'the first upload must fix width, height, pixel depth and the paper layout').toEqual(SHAPE_4x4);
    expect(store.params(), 'the packing must follow from the key size and the shape').toEqual(paramsOf(SHAPE_4x4));
    expect(store.count).toBe(2);

    const fast = openStore();
    await upload(fast, 0, [await record('a', 0, { shape: FAST_4x4 })], FAST_4x4);
    expect(fast.shape(), 'a collection uploaded without the paper layout must say so').toEqual(FAST_4x4);
  });

  it('refuses another image size, pixel depth or paper layout with invalid-input, storing nothing', async () => {
    for (const base of [SHAPE_4x4, FAST_4x4]) {
      const store = openStore();
      await upload(store, 0, [await record('a', 0, { shape: base })], base);
      const before = await stateOf(store);
      const other5x5 = { ...SHAPE_5x5, layouts: base.layouts };
      const deeper = { ...base, maxValue: 65535 };
      const hasPaper = (shape: CollectionShape) => shape.layouts.includes('paper');
      const otherLayout = { ...base, layouts: hasPaper(base) ? PACKED_ONLY : WITH_PAPER };
      const cases: [string, CollectionShape, TestRecord][] = [
        ['a 5x5 upload into a 4x4 collection', other5x5, await record('b', 0, { shape: other5x5 })],
        ['a 16-bit upload into an 8-bit collection', deeper, await record('b', 0, { shape: deeper })],
        [
          `an upload ${hasPaper(otherLayout) ? 'with' : 'without'} the paper layout into a collection ${hasPaper(base) ? 'with' : 'without'} it`,
          otherLayout,
          await record('b', 0, { shape: otherLayout }),
        ],
      ];
      for (const [what, shape, r] of cases) {
        const change = await changeFor(store, 1, [r], { shape });
        const error = thrown(() => store.upsertGroup(shape, change, [r.stored]), what);
        expectFnnError(error, 'invalid-input', what);
        await expectUnchanged(store, before, what);
      }
      const depth = thrown(
        () => store.upsertGroup(deeper, { group: 1, baseVersion: Buffer.alloc(0), version: newGroupVersion() }, []),
        'another depth',
      );
      expect((depth as Error).message, 'the refusal of another depth must name the depths').toMatch(/depth|65535/);
    }
  });

  it('keeps the offset and fit of the first upload, refuses others naming the stored one, and forgets them when emptied', async () => {
    const store = openStore();
    const withSettings = { ...SHAPE_4x4, settings: { offset: 1024, fit: 'crop' as const } };
    const a = await record('a', 0);
    await upload(store, 0, [a], withSettings);
    expect(store.shape(), 'the first upload must fix the offset and fit with the shape').toEqual(withSettings);
    const before = await stateOf(store);
    const cases: [string, CollectionShape, RegExp][] = [
      ['another offset', { ...SHAPE_4x4, settings: { offset: 0, fit: 'crop' } }, /created with --offset 1024/],
      ['another fit', { ...SHAPE_4x4, settings: { offset: 1024, fit: 'refuse' } }, /created with --fit crop/],
    ];
    for (const [what, shape, message] of cases) {
      const r = await record('b', 1);
      const change = await changeFor(store, 0, [r], { shape });
      const error = thrown(() => store.upsertGroup(shape, change, [r.stored]), what);
      expectFnnError(error, 'invalid-input', what);
      expect((error as Error).message, what).toMatch(message);
      await expectUnchanged(store, before, what);
    }
    // An upload that names no settings (an older owner's) is checked against the shape only.
    await upload(store, 0, [await record('c', 1)], SHAPE_4x4);
    expect(store.shape()).toEqual(withSettings);
    await remove(store, [a.stored.lookupTag, (await record('c', 1)).stored.lookupTag]);
    expect(store.shape(), 'an emptied collection must forget its settings with its shape').toBeUndefined();
    await upload(store, 0, [await record('d', 0)], { ...SHAPE_4x4, settings: { offset: 0, fit: 'refuse' } });
    expect(store.shape()?.settings).toEqual({ offset: 0, fit: 'refuse' });
  });

  it('refuses a record whose paper layout does not match its collection with invalid-input, storing nothing', async () => {
    const paper = openStore();
    const a = await record('a', 0);
    await upload(paper, 0, [a]);
    const fast = openStore();
    const x = await record('x', 0, { shape: FAST_4x4 });
    await upload(fast, 0, [x], FAST_4x4);
    const short = await record('s', 2);
    short.stored.paper = { ...short.stored.paper!, pixels: short.stored.paper!.pixels.slice(1) };
    const cases: [string, RecordStore, CollectionShape, TestRecord][] = [
      [
        'a record without the paper layout (2nd of the call) into a collection with it',
        paper,
        SHAPE_4x4,
        await record('n', 2, { paper: false }),
      ],
      [
        'a record with the paper layout (2nd of the call) into a collection without it',
        fast,
        FAST_4x4,
        await record('n', 2, { shape: FAST_4x4, paper: true }),
      ],
      ['a paper layout with 15 of 16 pixels (2nd of the call)', paper, SHAPE_4x4, short],
    ];
    for (const [what, store, shape, bad] of cases) {
      const before = await stateOf(store);
      const good = await record('g', 1, { shape });
      const change = await changeFor(store, 0, [good, bad], { shape });
      expectFnnError(
        thrown(() => store.upsertGroup(shape, change, [good.stored, bad.stored]), what),
        'invalid-input',
        what,
      );
      await expectUnchanged(store, before, what);
    }
    await expectPackedGroup(paper, 0, [a], 'the paper collection after the refusals');
    await expectPackedGroup(fast, 0, [x], 'the fast-only collection after the refusals');
  });

  it('refuses a first upload that breaks a rule and leaves the collection without a shape', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const fastOnly = await record('b', 1, { paper: false });
    const outside = await record('c', 0);
    outside.stored.slot = G();
    const cases: [string, () => Promise<unknown>][] = [
      [
        'a first upload whose 2nd record lacks the paper layout',
        async () => store.upsertGroup(SHAPE_4x4, await changeFor(store, 0, [a, fastOnly]), [a.stored, fastOnly.stored]),
      ],
      [
        `a first upload into slot ${G()} of a group of ${G()}`,
        async () => store.upsertGroup(SHAPE_4x4, await changeFor(store, 0, [a]), [outside.stored]),
      ],
      [
        'a first upload with columns of the wrong size',
        async () => {
          const change = await changeFor(store, 0, [a]);
          return store.upsertGroup(SHAPE_4x4, { ...change, columns: { ...change.columns!, distance: [] } }, [a.stored]);
        },
      ],
      ['a first upload of no records', async () => store.upsertGroup(SHAPE_4x4, await changeFor(store, 0, [a]), [])],
    ];
    for (const [what, run] of cases) {
      expectFnnError(await rejected(run(), what), 'invalid-input', what);
      expect(store.count, `${what}: nothing may be stored`).toBe(0);
      expect(store.shape(), `${what}: a refused first upload must not fix the shape`).toBeUndefined();
      expect(store.group(0), `${what}: a refused first upload must leave the group empty`).toEqual({
        version: Buffer.alloc(0),
        members: [],
      });
    }
  });
});

describe('RecordStore: group changes', () => {
  it('refuses a slot outside the group with invalid-input, storing nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    const before = await stateOf(store);
    for (const slot of [G(), -1, 1.5]) {
      const what = `slot ${slot} in a group of ${G()}`;
      const b = await record('b', 1);
      const change = await changeFor(store, 0, [b]);
      b.stored.slot = slot;
      expectFnnError(
        thrown(() => store.upsertGroup(SHAPE_4x4, change, [b.stored]), what),
        'invalid-input',
        what,
      );
      await expectUnchanged(store, before, what);
    }
  });

  it('refuses a record in a slot held by another tag with protocol-state (allocate again), storing nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    const before = await stateOf(store);
    const b = await record('b', 1);
    const intruder = await record('c', 0);
    const change = await changeFor(store, 0, [b, intruder]);
    const error = thrown(
      () => store.upsertGroup(SHAPE_4x4, change, [b.stored, intruder.stored]),
      'a record in a slot held by another record',
    );
    expectFnnError(error, 'protocol-state', 'a record in a slot held by another record');
    expect((error as Error).message, 'the refusal must tell the owner to allocate again').toMatch(/allocate/);
    await expectUnchanged(store, before, 'a record in a slot held by another record');
    const twice = await record('d', 2);
    const twin = await record('e', 2);
    const both = await changeFor(store, 0, [twice]);
    expectFnnError(
      thrown(() => store.upsertGroup(SHAPE_4x4, both, [twice.stored, twin.stored]), 'two new records in one slot'),
      'protocol-state',
      'two new records of one call in the same slot',
    );
    await expectUnchanged(store, before, 'two new records of one call in the same slot');
    await expectPackedGroup(store, 0, [a], 'after the refused records');
  });

  it('refuses a stored tag sent for another slot or group with protocol-state, storing nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    const before = await stateOf(store);
    for (const [what, group, slot] of [
      ['a stored record sent for another slot of its group', 0, 1],
      ['a stored record sent for another group', 1, 0],
    ] as const) {
      const moved = await record('a', slot);
      const change = await changeFor(store, group, [moved]);
      const error = thrown(() => store.upsertGroup(SHAPE_4x4, change, [moved.stored]), what);
      expectFnnError(error, 'protocol-state', what);
      expect((error as Error).message, `${what}: the refusal must tell the owner to allocate again`).toMatch(/allocate/);
      await expectUnchanged(store, before, what);
    }
  });

  it('refuses packed columns of the wrong size or without their constants with invalid-input, storing nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    const before = await stateOf(store);
    const b = await record('b', 1);
    const change = await changeFor(store, 0, [b]);
    const c = change.columns!;
    const cases: [string, GroupChange][] = [
      ['pixel columns 15 of 16', { ...change, columns: { ...c, distance: c.distance.slice(1) } }],
      ['no embedding columns', { ...change, columns: { ...c, bound: [] } }],
      ['embedding columns one too many', { ...change, columns: { ...c, bound: [...c.bound, c.bound[0]] } }],
      ['no distance constant', { ...change, columns: { ...c, distanceConstant: undefined } }],
      ['no bound constant', { ...change, columns: { ...c, boundConstant: undefined } }],
      ['no coarse columns', { ...change, columns: { ...c, coarse: [] } }],
      ['no coarse constant', { ...change, columns: { ...c, coarseConstant: undefined } }],
      ['no columns for a group that has members', { ...change, columns: undefined }],
    ];
    for (const [what, bad] of cases) {
      expectFnnError(
        thrown(() => store.upsertGroup(SHAPE_4x4, bad, [b.stored]), what),
        'invalid-input',
        what,
      );
      await expectUnchanged(store, before, what);
    }
    expect(store.upsertGroup(SHAPE_4x4, change, [b.stored]), 'the same change with its columns whole is accepted').toEqual({
      stored: 1,
      replaced: 0,
    });
    await expectPackedGroup(store, 0, [a, b], 'after the accepted change');
  });

  it('refuses a version that is not 16 bytes with invalid-input, storing nothing', async () => {
    const store = openStore();
    await upload(store, 0, [await record('a', 0)]);
    const before = await stateOf(store);
    const b = await record('b', 1);
    const change = await changeFor(store, 0, [b]);
    for (const version of [Buffer.alloc(0), Buffer.alloc(15, 1), Buffer.alloc(17, 1)]) {
      const what = `a ${version.length}-byte version`;
      expectFnnError(
        thrown(() => store.upsertGroup(SHAPE_4x4, { ...change, version }, [b.stored]), what),
        'invalid-input',
        what,
      );
      await expectUnchanged(store, before, what);
    }
  });

  it('refuses a change computed from a stale version of its group with protocol-state, storing nothing', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const { change: first } = await upload(store, 0, [a]);
    expect(store.group(0).version.equals(first.version), 'the group takes the version of its change').toBe(true);
    // Two owners read group 0 at the same version; the first to write wins.
    const b = await record('b', 1);
    const c = await record('c', 2);
    const fromB = await changeFor(store, 0, [b]);
    const fromC = await changeFor(store, 0, [c]);
    expect(store.upsertGroup(SHAPE_4x4, fromB, [b.stored])).toEqual({ stored: 1, replaced: 0 });
    const before = await stateOf(store);
    const error = thrown(() => store.upsertGroup(SHAPE_4x4, fromC, [c.stored]), 'a change computed before another one was written');
    expectFnnError(error, 'protocol-state', 'a change computed from a stale version');
    expect((error as Error).message, 'the refusal must tell the owner to run it again').toMatch(/again/);
    await expectUnchanged(store, before, 'a change computed from a stale version');
    const cases: [string, GroupChange][] = [
      ['a change from an owner who saw the group empty', { ...fromC, baseVersion: Buffer.alloc(0) }],
      ['a change based on a version the group never had', { ...fromC, baseVersion: newGroupVersion() }],
      [
        'a change to an empty group from an owner who saw it with members',
        { ...(await changeFor(store, 1, [c])), baseVersion: first.version },
      ],
    ];
    for (const [what, stale] of cases) {
      expectFnnError(
        thrown(() => store.upsertGroup(SHAPE_4x4, stale, [c.stored]), what),
        'protocol-state',
        what,
      );
      await expectUnchanged(store, before, what);
    }
    // Run again: read the group afresh, re-encrypt, write.
    await upload(store, 0, [c]);
    await expectPackedGroup(store, 0, [a, b, c], 'after the owner ran the refused change again');
  });

  it('replaces a record by lookup tag in place: reported as replaced, upload order kept, group re-encrypted', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1);
    const c = await record('c', 2);
    const { change: first } = await upload(store, 0, [a, b, c]);
    const [at] = store.allocateSlots(sizeOf(SHAPE_4x4), [b.stored.lookupTag]);
    expect(at, 'a stored record is allocated its own slot again').toEqual({ group: 0, slot: 1, stored: true });
    const newB = await record('b', at.slot);
    const { result, change } = await upload(store, 0, [newB]);
    expect(result, 'an upload with an existing lookup tag must be reported as 1 replaced, 0 stored').toEqual({ stored: 0, replaced: 1 });
    expect(store.count, 'a replacement must not add a record').toBe(3);
    expect(store.group(0).version.equals(change.version), 'the group takes the new version').toBe(true);
    expect(change.version.equals(first.version), 'each change has its own version').toBe(false);
    const snap = store.snapshot();
    const ids = Array.from({ length: snap.count }, (_, i) => recordKey.decryptId(snap.encryptedId(i)));
    expect(ids, 'a replaced record must keep its place in upload order (the tie rule depends on it)').toEqual(['a', 'b', 'c']);
    expect(await snap.pixels(1), 'the replaced record must hold the new paper ciphertexts').toEqual(newB.stored.paper!.pixels);
    expect((await snap.stats())[1], 'the replaced record must hold the new statistics').toEqual({
      sum: newB.stored.paper!.sum,
      spread: newB.stored.paper!.spread,
    });
    expect(snap.encryptedId(1).equals(newB.stored.encryptedId), 'the replaced record must hold the new E_k(ID)').toBe(true);
    const packed = store.packedSnapshot();
    expect(packed.groups, 'the replaced record keeps its slot and its candidate number').toEqual([
      { group: 0, members: [0, 1, 2, ...new Array<number>(G() - 3).fill(-1)], digest: groupDigest(change.version, tagsOf([a, newB, c])) },
    ]);
    expect(openSealedImage(recordKey, packed.sealedImage(1)).pixels, 'the sealed image must be the new one').toEqual(newB.image);
    await expectPackedGroup(store, 0, [a, newB, c], 'after the replacement');

    // A new record and a replacement in one change.
    const other = openStore();
    const x = await record('x', 0);
    await upload(other, 0, [x]);
    const newX = await record('x', 0);
    const y = await record('y', 1);
    expect((await upload(other, 0, [y, newX])).result, 'one new and one replaced in one call').toEqual({ stored: 1, replaced: 1 });
    expect([...candidatesById(other).entries()], 'the replaced record stays first in upload order').toEqual([
      ['x', 0],
      ['y', 1],
    ]);
    await expectPackedGroup(other, 0, [newX, y], 'after a mixed change');
  });

  it('rolls back the whole call when a later record fails to store', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    const before = await stateOf(store);
    const b = await record('b', 1);
    const broken = await record('c', 2);
    broken.stored.paper!.pixels[3] = 1n << BigInt(8 * pk.cipherBytes); // one bit wider than a ciphertext: cannot be stored
    const change = await changeFor(store, 0, [b, broken]);
    expect(() => store.upsertGroup(SHAPE_4x4, change, [b.stored, broken.stored]), 'an unstorable record must fail').toThrow();
    await expectUnchanged(store, before, 'a call whose 2nd record fails to store');
    expect(store.allocateSlots(sizeOf(SHAPE_4x4), [b.stored.lookupTag]), 'the rolled-back record must not hold its slot').toEqual([
      { group: 0, slot: 1, stored: false },
    ]);
  });
});

describe('RecordStore: delete', () => {
  it('deletes all or nothing: one unknown tag among known ones deletes none, with not-found', async () => {
    const store = openStore();
    const a = await record('a', 0);
    const b = await record('b', 1);
    await upload(store, 0, [a, b]);
    const before = await stateOf(store);
    const both = [a.stored.lookupTag, b.stored.lookupTag];
    const change = await changeFor(store, 0, [], { removed: both });
    const error = thrown(
      () => store.delete([a.stored.lookupTag, recordKey.lookupTag('nobody'), b.stored.lookupTag], [change]),
      'a delete naming an unknown record',
    );
    expectFnnError(error, 'not-found', 'a delete naming an unknown record');
    await expectUnchanged(store, before, 'a delete naming an unknown record');
    expectFnnError(
      thrown(() => store.delete([a.stored.lookupTag, a.stored.lookupTag], [change]), 'a tag named twice'),
      'not-found',
      'a tag named twice',
    );
    await expectUnchanged(store, before, 'a delete naming one record twice');
    expect(store.delete(both, [change]), 'deleting two known records').toBe(2);
    expect(store.count).toBe(0);
  });

  it('refuses a delete whose group changes do not match the groups losing members, storing nothing', async () => {
    const store = openStore();
    const g = G();
    const records = await Promise.all(Array.from({ length: g + 1 }, (_, i) => record(`r${i}`, i % g)));
    await upload(store, 0, records.slice(0, g));
    const alone = records[g]; // the only member of group 1
    await upload(store, 1, [alone]);
    const before = await stateOf(store);
    const gone = records[1].stored.lookupTag;
    const keeps = await changeFor(store, 0, [], { removed: [gone] });
    const leaves = await changeFor(store, 1, [], { removed: [alone.stored.lookupTag] });
    expect(leaves.columns, 'the owner sends no columns for a group it empties').toBeUndefined();
    const withColumns = { ...leaves, columns: keeps.columns };
    const cases: [string, Buffer[], GroupChange[], FnnError['kind']][] = [
      ['a delete that omits the group losing a member', [gone], [], 'invalid-input'],
      ['a delete that omits one of the two groups losing a member', [gone, alone.stored.lookupTag], [keeps], 'invalid-input'],
      ['a delete that changes a group losing no member', [gone], [keeps, { ...leaves, version: newGroupVersion() }], 'invalid-input'],
      ['a delete that changes its group twice', [gone], [keeps, { ...keeps, version: newGroupVersion() }], 'invalid-input'],
      ['a delete without columns for a group that keeps members', [gone], [{ ...keeps, columns: undefined }], 'invalid-input'],
      ['a delete with columns for a group it leaves empty', [alone.stored.lookupTag], [withColumns], 'invalid-input'],
      ['a delete with columns of the wrong size', [gone], [{ ...keeps, columns: { ...keeps.columns!, distance: [] } }], 'invalid-input'],
      ['a delete with a 15-byte version', [gone], [{ ...keeps, version: Buffer.alloc(15) }], 'invalid-input'],
      ['a delete computed from a stale version', [gone], [{ ...keeps, baseVersion: newGroupVersion() }], 'protocol-state'],
      [
        'a delete emptying a group, computed from a stale version',
        [alone.stored.lookupTag],
        [{ ...leaves, baseVersion: Buffer.alloc(0) }],
        'protocol-state',
      ],
    ];
    for (const [what, tags, changes, kind] of cases) {
      expectFnnError(
        thrown(() => store.delete(tags, changes), what),
        kind,
        what,
      );
      await expectUnchanged(store, before, what);
    }
    expect(store.delete([gone, alone.stored.lookupTag], [keeps, leaves]), 'the delete with the right changes').toBe(2);
    await expectPackedGroup(
      store,
      0,
      records.slice(0, g).filter((_, i) => i !== 1),
      'group 0 after the delete',
    );
  });

  it('re-encrypts a group from its remaining members after a delete, and drops a group whose last member goes', async () => {
    const store = openStore();
    const g = G();
    const records = await Promise.all(Array.from({ length: g + 1 }, (_, i) => record(`r${i}`, i % g)));
    await upload(store, 0, records.slice(0, g));
    const [first, middle, ...rest] = records;
    const last = rest.pop()!; // alone in group 1
    await upload(store, 1, [last]);
    const before = store.packedSnapshot();
    expect(before.groups.map((x) => x.group)).toEqual([0, 1]);

    expect(await remove(store, [middle.stored.lookupTag])).toBe(1);
    const remaining = [first, ...rest];
    await expectPackedGroup(store, 0, remaining, 'group 0 after deleting its 2nd member');
    const snap = store.packedSnapshot();
    const members = new Array<number>(g).fill(-1);
    const candidates = candidatesById(store);
    for (const r of remaining) members[r.stored.slot] = candidates.get(r.id)!;
    expect(snap.groups[0], 'the deleted slot is free, the others renumbered in upload order').toEqual({
      group: 0,
      members,
      digest: groupDigest(store.group(0).version, tagsOf(remaining)),
    });
    const column = (await columnsOf(snap, 0, 'distance')).columns[0];
    const slotValues = unpack(sk.decrypt(column), snap.params.slotBits, g);
    expect(slotValues[middle.stored.slot], "the deleted record's slot must hold 0: its data is gone, not masked").toBe(0n);
    expectFnnError(
      await rejected(before.columns(0, 'distance'), 'the columns of a group changed since the snapshot'),
      'protocol-state',
      'a group that changed during a query',
    );

    expect(await remove(store, [last.stored.lookupTag])).toBe(1);
    expect(
      store.packedSnapshot().groups.map((x) => x.group),
      'a group without members must disappear',
    ).toEqual([0]);
    expect(store.group(1), 'a dropped group has an empty version and no members').toEqual({ version: Buffer.alloc(0), members: [] });
    expectFnnError(
      await rejected(before.columns(1, 'distance'), 'the columns of a group deleted since the snapshot'),
      'protocol-state',
      'a group that disappeared during a query',
    );
    expect(store.allocateSlots(sizeOf(SHAPE_4x4), [recordKey.lookupTag('new')]), 'the freed slot in group 0 comes first').toEqual([
      { group: 0, slot: middle.stored.slot, stored: false },
    ]);
    expect(store.integrityCheck()).toBe('ok');
  });

  it('frees the collection shape, paper layout included, when the last record is deleted', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    expect(await remove(store, [a.stored.lookupTag])).toBe(1);
    expect(store.count).toBe(0);
    expect(store.shape(), 'an empty collection must have no shape').toBeUndefined();
    expect(store.params(), 'an empty collection must have no packing').toBeUndefined();
    expectFnnError(
      thrown(() => store.packedSnapshot(), 'a packed snapshot of an empty collection'),
      'invalid-input',
      'empty',
    );
    const fast5x5 = { ...SHAPE_5x5, layouts: PACKED_ONLY };
    const { result } = await upload(store, 0, [await record('b', 0, { shape: fast5x5 })], fast5x5);
    expect(result, 'after the last delete another size and layout must be accepted').toEqual({ stored: 1, replaced: 0 });
    expect(store.shape()).toEqual(fast5x5);
    expect(store.params(), 'the packing must follow the new shape').toEqual(paramsOf(fast5x5));
  });
});

describe('RecordStore: on disk', () => {
  it("removes a deleted record's ciphertexts, sealed image and its groups' old columns from the database file and the WAL", async () => {
    const path = freshPath();
    const store = openStore(path);
    const keep = await record('keep', 0);
    const gone = await record('gone', 1);
    const alone = await record('alone', 0); // the only member of group 1, deleted with gone
    await upload(store, 0, [keep, gone]);
    await upload(store, 1, [alone]);
    const snap = store.packedSnapshot();
    const columns = async (group: number) => {
      const d = await columnsOf(snap, group, 'distance');
      const b = await columnsOf(snap, group, 'bound');
      return [...d.columns, ...b.columns, d.constant, b.constant];
    };
    const group0Before = await columns(0);
    const group1Before = await columns(1);
    const goneProbes: [string, Buffer | Buffer[]][] = [
      ['paper pixel ciphertexts', cipherPieces(gone.stored.paper!.pixels, pk.cipherBytes)],
      ['sum and spread ciphertexts', cipherPieces([gone.stored.paper!.sum, gone.stored.paper!.spread], pk.cipherBytes)],
      ['sealed image', gone.stored.sealedImage.subarray(0, 64)],
      ['E_k(ID)', gone.stored.encryptedId],
      ['packed columns and constants of the group it left', cipherPieces(group0Before, pk.cipherBytes)],
      ['packed columns of the group it emptied', cipherPieces(group1Before, pk.cipherBytes)],
      ["the emptied group's member's paper ciphertexts", cipherPieces(alone.stored.paper!.pixels, pk.cipherBytes)],
    ];
    // Without this the test could pass vacuously (e.g. if the bytes were never where we look).
    const before = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(before, bytes), `before the delete the ${what} must be found on disk, or this test proves nothing`).toBe(true);
    expect(await remove(store, [gone.stored.lookupTag, alone.stored.lookupTag])).toBe(2);
    const after = databaseBytes(path);
    for (const [what, bytes] of goneProbes)
      expect(onDisk(after, bytes), `the deleted record's ${what} is still on disk (.db or -wal)`).toBe(false);
    const keepProbes: [string, Buffer | Buffer[]][] = [
      ['paper pixel ciphertexts', cipherPieces(keep.stored.paper!.pixels, pk.cipherBytes)],
      ['sealed image', keep.stored.sealedImage.subarray(0, 64)],
      ["group's re-encrypted columns", cipherPieces((await columnsOf(store.packedSnapshot(), 0, 'distance')).columns, pk.cipherBytes)],
    ];
    for (const [what, bytes] of keepProbes)
      expect(onDisk(after, bytes), `the ${what} of the record that was kept must still be on disk`).toBe(true);
  });

  it("removes a replaced record's old ciphertexts, sealed image and its group's old columns from the database file and the WAL", async () => {
    const path = freshPath();
    const store = openStore(path);
    const old = await record('a', 0);
    await upload(store, 0, [old, await record('b', 1)]);
    const snap = store.packedSnapshot();
    const oldColumns = (await columnsOf(snap, 0, 'distance')).columns;
    const oldProbes: [string, Buffer | Buffer[]][] = [
      ['paper pixel ciphertexts', cipherPieces(old.stored.paper!.pixels, pk.cipherBytes)],
      ['sum and spread ciphertexts', cipherPieces([old.stored.paper!.sum, old.stored.paper!.spread], pk.cipherBytes)],
      ['sealed image', old.stored.sealedImage.subarray(0, 64)],
      ['E_k(ID)', old.stored.encryptedId],
      ['packed columns of its group', cipherPieces(oldColumns, pk.cipherBytes)],
    ];
    const before = databaseBytes(path);
    for (const [what, bytes] of oldProbes)
      expect(onDisk(before, bytes), `before the replacement the old ${what} must be found on disk, or this test proves nothing`).toBe(true);
    expect((await upload(store, 0, [await record('a', 0)])).result).toEqual({ stored: 0, replaced: 1 });
    const after = databaseBytes(path);
    for (const [what, bytes] of oldProbes)
      expect(onDisk(after, bytes), `the replaced record's old ${what} is still on disk (.db or -wal) after the replacement`).toBe(false);
  });

  it('refuses to reopen a database with another key, and reopens with the same one', async () => {
    const path = freshPath();
    const first = openStore(path);
    await upload(first, 0, [await record('a', 0, { shape: FAST_4x4 })], FAST_4x4);
    first.close();
    const error = thrown(() => openStore(path, otherKey), 'opening the database under another key');
    expectFnnError(error, 'invalid-input', 'opening the database under another key');
    const again = openStore(path);
    expect(again.count, 'reopening with the right key must find the stored record').toBe(1);
    expect(again.shape(), 'reopening keeps the shape and the paper layout').toEqual(FAST_4x4);
  });

  it.each([4, 5])(
    'refuses a database of schema %i, stored before the coarse family (PROTOCOLS.md §3.5a), naming the remedy',
    async (version) => {
      const path = freshPath();
      const old = openStore(path);
      await upload(old, 0, [await record('a', 0)]);
      old.close();
      const raw = new Database(path, { fileMustExist: true });
      raw.prepare("UPDATE collection SET value = ? WHERE name = 'schema_version'").run(String(version));
      raw.close();
      expect(SCHEMA_VERSION).toBe(6);
      const error = thrown(() => openStore(path), `opening a schema ${version} database`);
      expectFnnError(error, 'invalid-input', `opening a schema ${version} database`);
      expect((error as Error).message).toBe(`database schema ${version}, this C1 needs 6; upload the collection into a new database`);
    },
  );

  it("passes SQLite's integrity check after uploads, replacements and deletes", async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a, await record('b', 1)]);
    expect(store.integrityCheck(), 'after an upload').toBe('ok');
    await upload(store, 0, [await record('a', 0)]);
    expect(store.integrityCheck(), 'after a replacement').toBe('ok');
    await remove(store, [a.stored.lookupTag]);
    expect(store.integrityCheck(), 'after a delete').toBe('ok');
  });
});

describe("RecordStore: the paper's snapshot", () => {
  it('gives a snapshot in upload order whose pixels and statistics round-trip exactly', async () => {
    const store = openStore();
    const g = G();
    const records = await Promise.all(['r0', 'r1', 'r2', 'r3', 'r4'].map((id, i) => record(id, i % g)));
    await upload(store, 0, [records[0], records[1]]);
    await upload(store, 0, [records[2]]);
    await upload(store, 1, [records[3], records[4]]);
    const snap = store.snapshot();
    expect(snap.count).toBe(5);
    expect(snap.dimension, 'the snapshot dimension must be width * height').toBe(16);
    const stats = await snap.stats();
    for (let i = 0; i < records.length; i++) {
      const paper = records[i].stored.paper!;
      expect(recordKey.decryptId(snap.encryptedId(i)), `snapshot position ${i} is out of upload order`).toBe(records[i].id);
      expect(await snap.pixels(i), `pixels of ${records[i].id} did not round-trip exactly`).toEqual(paper.pixels);
      expect(stats[i], `statistics of ${records[i].id} did not round-trip exactly`).toEqual({ sum: paper.sum, spread: paper.spread });
    }
  });

  it('refuses the paper snapshot of a collection uploaded without the paper layout, with protocol-state', async () => {
    const store = openStore();
    const x = await record('x', 0, { shape: FAST_4x4 });
    await upload(store, 0, [x], FAST_4x4);
    const error = thrown(() => store.snapshot(), 'the paper snapshot of a fast-only collection');
    expectFnnError(error, 'protocol-state', 'the paper snapshot of a fast-only collection');
    expect((error as Error).message, 'the refusal must point to the fast protocol').toMatch(/fast/);
    expect(store.packedSnapshot().count, 'the fast protocol still reads the collection').toBe(1);
    await expectPackedGroup(store, 0, [x], 'a fast-only collection');
    expect(openStore().snapshot().count, 'an empty collection has an empty paper snapshot').toBe(0);
  });
});

describe('RecordStore: slots and packed groups (fast protocol)', () => {
  it('allocates free slots first in group order, a stored tag its own place, and reuses freed slots', async () => {
    const store = openStore();
    const size = sizeOf(SHAPE_4x4);
    const tag = (id: string) => recordKey.lookupTag(id);
    expect(store.allocateSlots(size, [tag('new')]), 'the first record of an empty collection goes to group 0, slot 0').toEqual([
      { group: 0, slot: 0, stored: false },
    ]);
    const g = G();
    const ids = Array.from({ length: g + 2 }, (_, i) => `r${i}`);
    const places = store.allocateSlots(size, ids.map(tag));
    expect(places, 'new records fill group 0, then group 1').toEqual(
      ids.map((_, i) => ({ group: Math.floor(i / g), slot: i % g, stored: false })),
    );
    const records = await Promise.all(ids.map((id, i) => record(id, places[i].slot)));
    await upload(store, 0, records.slice(0, g));
    await upload(store, 1, records.slice(g));
    expect(store.allocateSlots(size, [tag('new')]), 'after G + 2 records the next slot is the 3rd of group 1').toEqual([
      { group: 1, slot: 2, stored: false },
    ]);
    expect(store.allocateSlots(size, [tag('new')]), 'allocating does not reserve: the same slot until it is used').toEqual([
      { group: 1, slot: 2, stored: false },
    ]);
    expect(store.allocateSlots(size, ids.map(tag)), 'stored records get their own places back, marked stored').toEqual(
      places.map((p) => ({ ...p, stored: true })),
    );
    expect(
      store.allocateSlots(size, [tag('new'), records[0].stored.lookupTag, tag('newer')]),
      'stored tags among new ones keep their places; the new ones fill free slots in order',
    ).toEqual([
      { group: 1, slot: 2, stored: false },
      { group: 0, slot: 0, stored: true },
      { group: Math.floor((g + 3) / g), slot: (g + 3) % g, stored: false },
    ]);
    // Free group 0 slot 1 and group 1 slot 0: the earlier one in group order comes first.
    await remove(store, [records[g].stored.lookupTag, records[1].stored.lookupTag]);
    expect(store.allocateSlots(size, [tag('new'), tag('next')]), 'the freed slots first, in group order').toEqual([
      { group: 0, slot: 1, stored: false },
      { group: 1, slot: 0, stored: false },
    ]);
    const [at] = store.allocateSlots(size, [tag('new')]);
    expect((await upload(store, at.group, [await record('new', at.slot)])).result, 'a freed slot can be filled again').toEqual({
      stored: 1,
      replaced: 0,
    });
    expect(store.allocateSlots(size, [records[1].stored.lookupTag]), 'a deleted record is allocated like a new one').toEqual([
      { group: 1, slot: 0, stored: false },
    ]);
  });

  it('gives the same new tag named twice in one call one place', () => {
    const store = openStore();
    const size = sizeOf(SHAPE_4x4);
    const [a, b] = [recordKey.lookupTag('a'), recordKey.lookupTag('b')];
    expect(store.allocateSlots(size, [a, b, Buffer.from(a)]), 'a tag named twice gets its first place again').toEqual([
      { group: 0, slot: 0, stored: false },
      { group: 0, slot: 1, stored: false },
      { group: 0, slot: 0, stored: false },
    ]);
  });

  it("uses the given shape's group size for an empty collection, without fixing the shape", async () => {
    const store = openStore();
    const small = { width: 16, height: 16, maxValue: 255 };
    const gSmall = paramsOf(small).groupSize;
    expect(gSmall, 'this test needs a shape whose groups differ in size from 4x4').not.toBe(G());
    const tags = Array.from({ length: Math.max(gSmall, G()) + 1 }, (_, i) => recordKey.lookupTag(`t${i}`));
    const placesFor = (groupSize: number) => tags.map((_, i) => ({ group: Math.floor(i / groupSize), slot: i % groupSize, stored: false }));
    expect(store.allocateSlots(small, tags), `16x16 images go ${gSmall} to a group`).toEqual(placesFor(gSmall));
    expect(store.allocateSlots(sizeOf(SHAPE_4x4), tags), `4x4 images go ${G()} to a group`).toEqual(placesFor(G()));
    expect(store.shape(), 'allocating must not fix the shape').toBeUndefined();
    await upload(store, 0, [await record('a', 0)]);
    expectFnnError(
      thrown(() => store.allocateSlots(small, tags), 'allocating for 16x16 images in a 4x4 collection'),
      'invalid-input',
      'another size',
    );
    expectFnnError(
      thrown(() => store.allocateSlots({ ...small, width: 4, height: 4, maxValue: 65535 }, tags), 'allocating for 16-bit images'),
      'invalid-input',
      'another depth',
    );
  });

  it("reports a group's version and members in slot order with their sealed images", async () => {
    const store = openStore();
    const b = await record('b', 2);
    const a = await record('a', 0);
    const { change } = await upload(store, 0, [b, a]);
    const group = store.group(0);
    expect(group.version.equals(change.version), "the group's version is its last change's").toBe(true);
    expect(
      group.members.map((m) => ({ slot: m.slot, tag: hex(m.lookupTag), image: openSealedImage(recordKey, m.sealedImage) })),
      'members in slot order, each with its tag and sealed image',
    ).toEqual([
      { slot: 0, tag: hex(a.stored.lookupTag), image: { ...sizeOf(SHAPE_4x4), pixels: a.image } },
      { slot: 2, tag: hex(b.stored.lookupTag), image: { ...sizeOf(SHAPE_4x4), pixels: b.image } },
    ]);
    expect(store.group(1), 'a group without members').toEqual({ version: Buffer.alloc(0), members: [] });
  });

  it('gives packed layouts with members per slot as upload-order candidates and the digest of version and tags', async () => {
    const store = openStore();
    const g = G();
    // Uploaded in this order, into slots out of slot order.
    const r0 = await record('r0', 2);
    const r1 = await record('r1', 0);
    const r2 = await record('r2', 1);
    const r3 = await record('r3', 1);
    await upload(store, 0, [r0, r1]);
    const { change: change1 } = await upload(store, 1, [r2]);
    const { change: change0 } = await upload(store, 0, [r3]);
    const snap = store.packedSnapshot();
    expect(snap.params).toEqual(paramsOf(SHAPE_4x4));
    expect(snap.count).toBe(4);
    const free = (n: number) => new Array<number>(n).fill(-1);
    const members0 = free(g);
    members0[0] = 1;
    members0[1] = 3;
    members0[2] = 0;
    const members1 = free(g);
    members1[1] = 2;
    expect(snap.groups, 'groups in order, each slot naming its record by upload order (-1: free)').toEqual([
      { group: 0, members: members0, digest: groupDigest(change0.version, tagsOf([r1, r3, r0])) },
      { group: 1, members: members1, digest: groupDigest(change1.version, tagsOf([r2])) },
    ]);
    [r0, r1, r2, r3].forEach((r, candidate) => {
      expect(recordKey.decryptId(snap.encryptedId(candidate)), `candidate ${candidate}'s E_k(ID)`).toBe(r.id);
      expect(openSealedImage(recordKey, snap.sealedImage(candidate)), `candidate ${candidate}'s sealed image`).toEqual({
        ...sizeOf(SHAPE_4x4),
        pixels: r.image,
      });
    });
    await expectPackedGroup(store, 0, [r1, r3, r0], 'group 0');
    await expectPackedGroup(store, 1, [r2], 'group 1');
    // The packed column holds each member's value in its own slot and nothing elsewhere.
    const column = (await columnsOf(snap, 0, 'distance')).columns[5];
    expect(unpack(sk.decrypt(column), snap.params.slotBits, 3)).toEqual([r1, r3, r0].map((r) => BigInt(r.image[5])));
    expect(unpack(sk.decrypt(column), snap.params.slotBits, g).slice(3), 'free slots hold 0').toEqual(new Array(g - 3).fill(0n));
    expectFnnError(
      await rejected(snap.columns(7, 'distance'), 'columns of a group that does not exist'),
      'protocol-state',
      'unknown group',
    );
  });

  it('changes a group digest with every change of the group, and only that group', async () => {
    const store = openStore();
    const a = await record('a', 0);
    await upload(store, 0, [a]);
    await upload(store, 1, [await record('z', 0)]);
    const digests = () => new Map(store.packedSnapshot().groups.map((x) => [x.group, x.digest]));
    const first = digests();
    const stale = store.packedSnapshot();
    await upload(store, 0, [await record('a', 0)]); // same members, new contents: only the version differs
    const second = digests();
    expect(second.get(0), 'a replacement (same tags, new version) must change the digest').not.toBe(first.get(0));
    expect(second.get(1), 'an untouched group keeps its digest').toBe(first.get(1));
    expectFnnError(
      await rejected(stale.columns(0, 'bound'), 'columns of a group replaced since the snapshot'),
      'protocol-state',
      'replaced group',
    );
    expect(
      (await columnsOf(stale, 1, 'bound')).columns.length,
      'an untouched group can still be read from an older snapshot',
    ).toBeGreaterThan(0);
  });

  it("gives the owner's group digests for the changes C2's replica test applies too (so C1's agree with C2's)", async () => {
    const store = openStore();
    /** The owner's digest of each group with members: what C2 gives for the same changes (replica-store.test.ts). */
    const owner = new Map<number, string>();
    for (const step of groupChangeSteps((id, slot) => record(id, slot, { shape: FAST_4x4 }))) {
      const [members, added, removed] = await Promise.all([step.members, step.added, step.removed].map((rs) => Promise.all(rs)));
      const removedTags = removed.map((r) => r.stored.lookupTag);
      const change = await changeFor(store, step.group, added, { shape: FAST_4x4, removed: removedTags });
      if (removed.length > 0) store.delete(removedTags, [change]);
      else
        store.upsertGroup(
          FAST_4x4,
          change,
          added.map((r) => r.stored),
        );
      if (members.length === 0) owner.delete(step.group);
      else owner.set(step.group, groupDigest(change.version, tagsOf(members)));
      expect(new Map(store.packedSnapshot().groups.map((g) => [g.group, g.digest])), `${step.what}: C1's digests by group`).toEqual(owner);
    }
  });
});
