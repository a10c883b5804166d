import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encryptGroup,
  groupDigest,
  groupPlaintexts,
  newGroupVersion,
  packingParams,
  type RecordKey,
  unpack,
  type PackingParams,
  type PublicKey,
  type SecretKey,
} from '@fnn/shared';
// What a store keeps on disk, and the refusals and set-up every store test shares.
import { cipherPieces, ciphersOf, databaseBytes, onDisk } from '@fnn/server-common/testing';
import { expectFnnError, groupChangeSteps, rejected, ScratchDatabases, storeTestKeys, thrown } from '@fnn/server-common/testing';
import { REPLICA_SCHEMA_VERSION, ReplicaStore, type ReplicaGroupChange, type ReplicaShape } from './replica-store';

// C2's replica of the packed groups against a real SQLite file: a group set
// whole (stored, replaced, dropped), the refusals that store nothing, the
// digest C2 compares with C1's, secure deletion on disk, key binding.

let pk1: PublicKey; // C1's key: the replica is under it
let sk1: SecretKey; // only to look inside the packed columns in tests
let otherKey: PublicKey;
let recordKey: RecordKey;
const scratch = new ScratchDatabases('fnn-replica-test-');

beforeAll(async () => ({ key: pk1, secret: sk1, otherKey, recordKey } = await storeTestKeys()));

afterAll(() => scratch.cleanUp());

const SHAPE_4x4: ReplicaShape = { width: 4, height: 4, maxValue: 255 };
const SHAPE_5x5: ReplicaShape = { width: 5, height: 5, maxValue: 255 };
const paramsOf = (shape: ReplicaShape): PackingParams => packingParams(pk1.bits, shape.width, shape.height, shape.maxValue);
const G = () => paramsOf(SHAPE_4x4).groupSize;

const freshPath = (name = 'c2.db'): string => scratch.path(name);

function openReplica(path = freshPath(), key = pk1): ReplicaStore {
  return scratch.track(new ReplicaStore(path, key));
}

const randomImage = (d: number) => Uint16Array.from({ length: d }, () => Math.floor(Math.random() * 256));
const under = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));
/** C1's copy (under C2's key) is not C2's business: its ciphertexts are not computed here. */
const notForC2 = async (values: bigint[]) => values.map(() => 0n);

/** A record in its slot, as the owner knows it. */
interface TestRecord {
  id: string;
  tag: Buffer;
  image: Uint16Array;
  slot: number;
}

function record(id: string, slot: number, shape = SHAPE_4x4): TestRecord {
  return { id, tag: recordKey.lookupTag(id), image: randomImage(shape.width * shape.height), slot };
}

/** One change to one group as the owner sends it to C2 (under pk1). */
interface TestChange {
  members: TestRecord[];
  replica: ReplicaGroupChange;
}

/** The owner's change that sets `group` to exactly `members`, re-encrypted whole under a new version. */
async function groupChange(group: number, members: TestRecord[], shape = SHAPE_4x4, version = newGroupVersion()): Promise<TestChange> {
  const p = paramsOf(shape);
  const slots = new Array<Uint16Array | null>(p.groupSize).fill(null);
  for (const m of members) slots[m.slot] = m.image;
  const columns = members.length > 0 ? await encryptGroup(slots, p, notForC2, under(pk1)) : undefined;
  return {
    members,
    replica: { group, version, members: members.map((m) => ({ slot: m.slot, lookupTag: m.tag })), columns: columns?.forC2 },
  };
}

async function put(store: ReplicaStore, group: number, members: TestRecord[], shape = SHAPE_4x4): Promise<TestChange> {
  const change = await groupChange(group, members, shape);
  store.putGroup(shape, change.replica);
  return change;
}

/** The digest C1 and C2 must compute for a group set by this change. */
function digestOf(change: TestChange, groupSize = G()): string {
  const tags = new Array<Buffer | null>(groupSize).fill(null);
  for (const m of change.members) tags[m.slot] = m.tag;
  return groupDigest(change.replica.version, tags);
}

/** Everything a refused change must leave as it was: count, shape, and each listed group's digest and raw columns. */
async function stateOf(store: ReplicaStore, groups: number[]) {
  const params = store.params();
  if (!params) return { count: store.count, params };
  const source = store.source();
  return {
    count: store.count,
    params,
    groups: await Promise.all(
      groups.map(async (g) => {
        const digest = source.digest(g);
        if (digest === undefined) return { group: g };
        return {
          group: g,
          digest,
          distance: ciphersOf(await source.columns(g, 'distance', digest)),
          bound: ciphersOf(await source.columns(g, 'bound', digest)),
          coarse: ciphersOf(await source.columns(g, 'coarse', digest)),
        };
      }),
    ),
  };
}

/** The group's digest must name this change, and its columns must decrypt to the packed plaintexts of its members. */
async function expectGroup(store: ReplicaStore, change: TestChange, what: string) {
  const group = change.replica.group;
  const source = store.source();
  const p = source.params;
  const digest = source.digest(group);
  expect(digest, `${what}: digest of group ${group}`).toBe(digestOf(change, p.groupSize));
  const slots = new Array<Uint16Array | null>(p.groupSize).fill(null);
  for (const m of change.members) slots[m.slot] = m.image;
  const want = groupPlaintexts(slots, p);
  const distance = ciphersOf(await source.columns(group, 'distance', digest!));
  const bound = ciphersOf(await source.columns(group, 'bound', digest!));
  const coarse = ciphersOf(await source.columns(group, 'coarse', digest!));
  expect(
    coarse.map((c) => sk1.decrypt(c)),
    `${what}: packed coarse columns of group ${group}`,
  ).toEqual(want.coarseEmbedding);
  expect(
    distance.map((c) => sk1.decrypt(c)),
    `${what}: packed pixel columns of group ${group}`,
  ).toEqual(want.pixels);
  expect(
    bound.map((c) => sk1.decrypt(c)),
    `${what}: packed embedding columns of group ${group}`,
  ).toEqual(want.embedding);
  expect(distance, `${what}: the stored columns must be exactly the ciphertexts sent`).toEqual(change.replica.columns!.distance);
}

describe('ReplicaStore', () => {
  it('works with 512-bit keys and 4x4 8-bit images in groups of at least 3', () => {
    expect(G()).toBeGreaterThanOrEqual(3);
  });

  it('stores groups: count, packing, digests and columns that decrypt to the members in their slots', async () => {
    const store = openReplica();
    expect(store.count).toBe(0);
    expect(store.params(), 'an empty replica has no packing').toBeUndefined();
    expectFnnError(
      thrown(() => store.source(), 'the source of an empty replica'),
      'invalid-input',
      'empty replica',
    );
    const full = Array.from({ length: G() }, (_, i) => record(`r${i}`, i));
    const one = record('x', 1);
    const group0 = await put(store, 0, full);
    const group1 = await put(store, 1, [one]);
    expect(store.count, 'every member of every group counts').toBe(G() + 1);
    expect(store.params(), "the packing follows from C1's key size and the shape").toEqual(paramsOf(SHAPE_4x4));
    await expectGroup(store, group0, 'full group 0');
    await expectGroup(store, group1, 'group 1 with one member in slot 1');
    const source = store.source();
    expect(source.digest(2), 'a group without members has no digest').toBeUndefined();
    expectFnnError(
      await rejected(source.columns(2, 'distance', 'no-such-digest'), 'columns of an unknown group'),
      'protocol-state',
      'unknown group',
    );
    // The packed column holds each member's pixel in its own slot.
    const column = ciphersOf(await source.columns(0, 'distance', source.digest(0)!))[3];
    expect(unpack(sk1.decrypt(column), paramsOf(SHAPE_4x4).slotBits, G())).toEqual(full.map((r) => BigInt(r.image[3])));
  });

  it('replaces a group whole: members, version and columns of the new change only', async () => {
    const store = openReplica();
    const a = record('a', 0);
    const b = record('b', 1);
    await put(store, 0, [a, b]);
    const other = await put(store, 1, [record('z', 0)]);
    const newA = record('a', 0); // same tag, new image
    const c = record('c', 2);
    const second = await put(store, 0, [newA, c]);
    expect(store.count, 'b left the group, c joined it: still 2 + 1 members').toBe(3);
    await expectGroup(store, second, 'group 0 after the change');
    await expectGroup(store, other, 'the untouched group 1');
  });

  it('drops a group given no members, and forgets the shape when the replica is empty', async () => {
    const store = openReplica();
    const group0 = await put(
      store,
      0,
      Array.from({ length: G() }, (_, i) => record(`r${i}`, i)),
    );
    await put(store, 1, [record('last', 0)]);
    const before = store.source();
    const digestBefore1 = before.digest(1)!;
    const drop = await groupChange(1, []);
    expect(drop.replica.columns, 'the owner sends no columns for an emptied group').toBeUndefined();
    store.putGroup(SHAPE_4x4, drop.replica);
    expect(store.count).toBe(G());
    expect(store.source().digest(1), 'a group without members must disappear').toBeUndefined();
    expectFnnError(
      await rejected(before.columns(1, 'distance', digestBefore1), 'columns of a dropped group'),
      'protocol-state',
      'dropped group',
    );
    await expectGroup(store, group0, 'the untouched group');
    await put(store, 0, []);
    expect(store.count).toBe(0);
    expect(store.params(), 'an empty replica has no shape').toBeUndefined();
    await put(store, 5, []);
    expect(store.params(), 'dropping a group of an empty replica leaves it without a shape').toBeUndefined();
    const other = await put(store, 0, [record('x', 0, SHAPE_5x5)], SHAPE_5x5);
    expect(store.params(), 'after the last group is dropped another shape is accepted').toEqual(paramsOf(SHAPE_5x5));
    await expectGroup(store, other, 'a 5x5 group');
  });

  it('refuses another shape, a bad slot, columns of the wrong size or for an empty group, and a version not of 16 bytes, storing nothing', async () => {
    const store = openReplica();
    const held = await put(store, 0, [record('a', 0), record('b', 1)]);
    await put(store, 1, [record('c', 0)]);
    const before = await stateOf(store, [0, 1, 2]);
    const c = record('c', 2);
    const change = (await groupChange(0, [...held.members, c])).replica;
    const cols = change.columns!;
    const cases: [string, () => unknown][] = [
      [
        'another image size (5x5 into 4x4)',
        async () => store.putGroup(SHAPE_5x5, (await groupChange(2, [record('d', 0, SHAPE_5x5)], SHAPE_5x5)).replica),
      ],
      ['another pixel depth', () => store.putGroup({ ...SHAPE_4x4, maxValue: 65535 }, change)],
      [
        `slot ${G()} in a group of ${G()}`,
        () => store.putGroup(SHAPE_4x4, { ...change, members: [...change.members, { slot: G(), lookupTag: recordKey.lookupTag('e') }] }),
      ],
      ['slot -1', () => store.putGroup(SHAPE_4x4, { ...change, members: [{ slot: -1, lookupTag: c.tag }] })],
      ['slot 0.5', () => store.putGroup(SHAPE_4x4, { ...change, members: [{ slot: 0.5, lookupTag: c.tag }] })],
      [
        'one slot named twice',
        () => store.putGroup(SHAPE_4x4, { ...change, members: [...change.members, { slot: 0, lookupTag: recordKey.lookupTag('e') }] }),
      ],
      ['15 of 16 pixel columns', () => store.putGroup(SHAPE_4x4, { ...change, columns: { ...cols, distance: cols.distance.slice(1) } })],
      [
        'an embedding of the wrong length',
        () => store.putGroup(SHAPE_4x4, { ...change, columns: { ...cols, bound: cols.bound.slice(2) } }),
      ],
      ['members without columns', () => store.putGroup(SHAPE_4x4, { ...change, columns: undefined })],
      ['columns for a group left empty', () => store.putGroup(SHAPE_4x4, { ...change, members: [] })],
      ['a 15-byte version', () => store.putGroup(SHAPE_4x4, { ...change, version: Buffer.alloc(15, 1) })],
      ['an empty version', () => store.putGroup(SHAPE_4x4, { ...change, version: Buffer.alloc(0) })],
      ['a 15-byte version on a drop', () => store.putGroup(SHAPE_4x4, { group: 1, version: Buffer.alloc(15, 1), members: [] })],
    ];
    for (const [what, run] of cases) {
      expectFnnError(await rejected(Promise.resolve().then(run), what), 'invalid-input', what);
      // A refused change to a held group must not drop or alter its members either.
      expect(await stateOf(store, [0, 1, 2]), `${what}: nothing may be stored or dropped`).toEqual(before);
    }
    await expectGroup(store, held, 'the held group after the refusals');
    const empty = openReplica();
    const first = await groupChange(0, [record('a', 0)]);
    const firsts: [string, ReplicaGroupChange][] = [
      ['first change, slot outside', { ...first.replica, members: [{ slot: G(), lookupTag: first.members[0].tag }] }],
      ['first change, 8-byte version', { ...first.replica, version: Buffer.alloc(8) }],
      ['first change, columns of the wrong size', { ...first.replica, columns: { ...first.replica.columns!, distance: [] } }],
    ];
    for (const [what, bad] of firsts) {
      expectFnnError(
        thrown(() => empty.putGroup(SHAPE_4x4, bad), what),
        'invalid-input',
        what,
      );
      expect(empty.params(), `${what}: a refused first change must not fix the shape`).toBeUndefined();
      expect(empty.count, `${what}: nothing may be stored`).toBe(0);
    }
  });

  it('refuses a group that does not fit on a full disk with RESOURCE_EXHAUSTED naming the file, storing nothing of it', async () => {
    const path = freshPath();
    const store = openReplica(path);
    const held = [await put(store, 0, [record('a', 0), record('b', 1)])];
    // No page beyond those the file has now (SQLite keeps max_page_count at least the current size).
    store.limitPages(1);
    let refused: unknown;
    for (let group = 1; group <= 40 && refused === undefined; group++) {
      const before = await stateOf(store, [group]);
      const change = await groupChange(group, [record(`g${group}`, 0)]);
      try {
        store.putGroup(SHAPE_4x4, change.replica);
        held.push(change);
      } catch (e) {
        refused = e;
        expect(await stateOf(store, [group]), 'the refused group must not be stored, not even in part').toEqual(before);
      }
    }
    expectFnnError(refused, 'resource-exhausted', 'a group on a full disk');
    expect((refused as Error).message, 'the owner is told which disk is full').toBe(`C2's disk is full (replica at ${path})`);
    expect(store.count, 'C2 holds exactly the groups stored before').toBe(held.reduce((n, c) => n + c.members.length, 0));
    for (const change of held) await expectGroup(store, change, `group ${change.replica.group}, stored before the disk filled`);
    expect(store.integrityCheck(), "C2's replica is intact").toBe('ok');
  });

  it('names the pixel depth when it refuses a group of another depth (the message reaches the owner)', async () => {
    const store = openReplica();
    await put(store, 0, [record('a', 0)]);
    const b = await groupChange(1, [record('b', 0)]);
    const error = thrown(() => store.putGroup({ ...SHAPE_4x4, maxValue: 65535 }, b.replica), 'a 16-bit group into an 8-bit replica');
    expectFnnError(error, 'invalid-input', 'a 16-bit group into an 8-bit replica');
    // C1 says "image pixel depth 65535 differs from the collection's 255"; C2 must not say "4x4 ... are 4x4".
    expect((error as Error).message, 'the refusal must name the pixel depths, not two equal sizes').toMatch(/depth|65535/);
  });

  it('changes a group digest with its version and with its members, and only then', async () => {
    const store = openReplica();
    const a = record('a', 0);
    const b = record('b', 1);
    const version = newGroupVersion();
    const digest = () => store.source().digest(0);
    await put(store, 1, [record('z', 0)]);
    const other = store.source().digest(1);
    store.putGroup(SHAPE_4x4, (await groupChange(0, [a, b], SHAPE_4x4, version)).replica);
    const first = digest();
    expect(first, 'the digest names the version and the tags in slot order').toBe(
      groupDigest(version, [a.tag, b.tag, ...new Array(G() - 2).fill(null)]),
    );
    store.putGroup(SHAPE_4x4, (await groupChange(0, [a, b], SHAPE_4x4, newGroupVersion())).replica);
    expect(digest(), 'the same members under a new version must give another digest').not.toBe(first);
    store.putGroup(SHAPE_4x4, (await groupChange(0, [a], SHAPE_4x4, version)).replica);
    expect(digest(), 'other members under the same version must give another digest').not.toBe(first);
    store.putGroup(
      SHAPE_4x4,
      (
        await groupChange(
          0,
          [
            { ...a, slot: 1 },
            { ...b, slot: 0 },
          ],
          SHAPE_4x4,
          version,
        )
      ).replica,
    );
    expect(digest(), 'the same members in other slots must give another digest').not.toBe(first);
    store.putGroup(SHAPE_4x4, (await groupChange(0, [a, b], SHAPE_4x4, version)).replica);
    expect(digest(), 'the same version and members give the same digest, whatever the columns').toBe(first);
    expect(store.source().digest(1), 'changes to group 0 leave group 1 alone').toBe(other);
  });

  it('refuses columns when the expected digest differs from the group as it is now, with protocol-state', async () => {
    const store = openReplica();
    const change = await put(store, 0, [record('a', 0)]);
    const source = store.source();
    const digest = source.digest(0)!;
    expectFnnError(
      await rejected(source.columns(0, 'distance', digestOf({ ...change, members: [] })), 'columns under a wrong digest'),
      'protocol-state',
      'wrong digest',
    );
    expect(ciphersOf(await source.columns(0, 'bound', digest)), 'the right digest reads the columns').toEqual(
      change.replica.columns!.bound,
    );
    await put(store, 0, [record('a', 0)]); // the group changes during a query
    expectFnnError(
      await rejected(source.columns(0, 'distance', digest), 'columns under a digest the group no longer has'),
      'protocol-state',
      'stale digest',
    );
  });

  it("gives the owner's group digests for the changes C1's store test applies too (so C2's agree with C1's)", async () => {
    const replica = openReplica();
    /** The owner's digest of each group with members: what C1 gives for the same changes (storage.test.ts). */
    const owner = new Map<number, string>();
    for (const step of groupChangeSteps(record)) {
      const change = await groupChange(step.group, step.members);
      const digest = step.members.length > 0 ? digestOf(change) : undefined;
      if (!step.reachesC2) {
        expect(replica.source().digest(step.group), 'a change made at C1 only must make the digests differ').not.toBe(digest);
        continue;
      }
      replica.putGroup(SHAPE_4x4, change.replica);
      if (digest === undefined) owner.delete(step.group);
      else owner.set(step.group, digest);
      const source = replica.source();
      expect(owner.size, step.what).toBeGreaterThan(0);
      for (const [group, want] of owner)
        expect(source.digest(group), `${step.what}: C2's digest of group ${group} differs from the owner's (and C1's)`).toBe(want);
      for (const g of [0, 1, 2])
        if (!owner.has(g)) expect(source.digest(g), `${step.what}: group ${g} is empty at C1 and must be at C2`).toBeUndefined();
    }
  });

  it("removes a replaced or dropped group's old columns and departed members' tags from the database file and the WAL", async () => {
    const path = freshPath();
    const store = openReplica(path);
    const keep = record('keep', 0);
    const gone = record('gone', 1);
    const old = await put(store, 0, [keep, gone]);
    const dropped = await put(store, 1, [record('alone', 0)]);
    const columnsOf = (c: TestChange) =>
      cipherPieces([...c.replica.columns!.distance, ...c.replica.columns!.bound, ...c.replica.columns!.coarse], pk1.cipherBytes);
    const probes: [string, Buffer | Buffer[]][] = [
      ['replaced columns', columnsOf(old)],
      ["departed member's lookup tag", gone.tag],
      ['dropped columns', columnsOf(dropped)],
      ["dropped group's member's lookup tag", dropped.members[0].tag],
    ];
    // Without this the test could pass vacuously (e.g. if the bytes were never where we look).
    const before = databaseBytes(path);
    for (const [what, bytes] of probes)
      expect(onDisk(before, bytes), `${what} must be on disk before, or this test proves nothing`).toBe(true);
    const kept = await put(store, 0, [keep]);
    await put(store, 1, []);
    const after = databaseBytes(path);
    for (const [what, bytes] of probes) expect(onDisk(after, bytes), `the ${what} are still on disk (.db or -wal)`).toBe(false);
    expect(onDisk(after, columnsOf(kept)), "the group's new columns must be on disk").toBe(true);
    expect(onDisk(after, keep.tag), "the remaining member's tag must be on disk").toBe(true);
  });

  it('refuses to reopen a replica under another key of C1, and reopens under the same one', async () => {
    const path = freshPath();
    const first = openReplica(path);
    const change = await put(first, 0, [record('a', 0)]);
    first.close();
    expectFnnError(
      thrown(() => openReplica(path, otherKey), 'opening the replica under another key'),
      'invalid-input',
      'another key',
    );
    const again = openReplica(path);
    expect(again.count, 'reopening with the right key must find the stored group').toBe(1);
    expect(again.params()).toEqual(paramsOf(SHAPE_4x4));
    await expectGroup(again, change, 'after reopening');
  });

  it.each([1, 2])(
    'refuses a replica of schema %i, stored before the coarse family (PROTOCOLS.md §3.5a), naming the remedy',
    async (version) => {
      const path = freshPath();
      const old = openReplica(path);
      await put(old, 0, [record('a', 0)]);
      old.close();
      const raw = new Database(path, { fileMustExist: true });
      raw.prepare("UPDATE collection SET value = ? WHERE name = 'schema_version'").run(String(version));
      raw.close();
      expect(REPLICA_SCHEMA_VERSION).toBe(4);
      const error = thrown(() => openReplica(path), `opening a schema ${version} replica`);
      expectFnnError(error, 'invalid-input', `opening a schema ${version} replica`);
      expect((error as Error).message).toBe(
        `replica schema ${version}, this C2 needs 4; start C2 on a new replica file and upload the collection's replica again`,
      );
    },
  );
});

// The rule of replica changes (docs/ARCHITECTURE.md, "Replica changes"): a
// change is taken pending and served only once C1 is seen to hold it.
describe('ReplicaStore: changes pending until C1 holds them', () => {
  const ID = randomBytes(16);

  /** A replica with group 0 committed (two members) and a pending change of it (a third member, a new version). */
  async function withPending() {
    const store = openReplica();
    const a = record('a', 0);
    const b = record('b', 1);
    const committed = await groupChange(0, [a, b]);
    store.stageGroup(SHAPE_4x4, committed.replica, ID);
    expect(store.settleGroups(ID, [{ group: 0, digest: digestOf(committed) }], true)).toEqual(['promoted']);
    const pending = await groupChange(0, [a, b, record('c', 2)]);
    store.stageGroup(SHAPE_4x4, pending.replica, ID);
    return { store, committed, pending };
  }

  it('serves a taken change only once settled with its digest; the old group until then', async () => {
    const { store, committed, pending } = await withPending();
    expect(store.count, 'a pending change is not served').toBe(2);
    await expectGroup(store, committed, 'the committed group while a change is pending');
    expect(store.groupStates(), 'fnn check sees both').toEqual([
      { group: 0, digest: digestOf(committed), members: 2, pending: { digest: digestOf(pending), members: 3 } },
    ]);
    // A session that sees C1 before its commit: the old group, and the pending change kept.
    expect(store.settleGroups(ID, [{ group: 0, digest: digestOf(committed) }], false)).toEqual(['current']);
    expect(store.groupStates()[0].pending, 'kept: C1 may be about to commit it').toBeDefined();
    expect(store.settleGroups(ID, [{ group: 0, digest: 'f'.repeat(32) }], false), 'a digest of neither').toEqual(['differs']);
    expect(store.settleGroups(ID, [{ group: 0, digest: digestOf(pending) }], false)).toEqual(['promoted']);
    expect(store.count).toBe(3);
    await expectGroup(store, pending, 'the promoted change');
    expect(store.groupStates()[0].pending, 'nothing pending after the promotion').toBeUndefined();
  });

  it("drops a pending change C1 does not hold on the owner's word only", async () => {
    const { store, committed } = await withPending();
    expect(store.settleGroups(ID, [{ group: 0, digest: digestOf(committed) }], true)).toEqual(['current']);
    expect(store.groupStates(), 'the stale change is gone').toEqual([
      { group: 0, digest: digestOf(committed), members: 2, pending: undefined },
    ]);
    await expectGroup(store, committed, 'the committed group');
  });

  it('agrees with C1 at session open: promotes what C1 presents, also a pending emptying of a group C1 does not list, and names the groups that differ', async () => {
    const { store, pending } = await withPending();
    const lone = await groupChange(1, [record('lone', 0)]);
    store.putGroup(SHAPE_4x4, lone.replica, ID);
    const stray = await groupChange(2, [record('stray', 0)]);
    store.putGroup(SHAPE_4x4, stray.replica, ID);
    store.stageGroup(SHAPE_4x4, (await groupChange(1, [])).replica, ID); // group 1 emptied, pending
    expect(store.count).toBe(4);
    const differ = store.source().agree(ID, [
      { group: 0, digest: digestOf(pending) },
      { group: 2, digest: 'e'.repeat(32) },
    ]);
    expect(differ, 'group 2 is neither what C2 serves nor pending').toEqual([2]);
    await expectGroup(store, pending, 'group 0, promoted');
    expect(store.source().digest(1), 'group 1: C1 does not list it, so it is empty at C1, as the pending change left it').toBeUndefined();
    expect(store.count).toBe(3 + 1);
  });

  it('binds the collection id at the first change and refuses another one, changing nothing; a session without an id is let through', async () => {
    const { store, committed } = await withPending();
    const before = { groups: store.groupStates(), state: await stateOf(store, [0]) };
    const other = randomBytes(16);
    const refused = [
      ['a change', () => store.stageGroup(SHAPE_4x4, committed.replica, other)],
      ['a commit', () => store.settleGroups(other, [{ group: 0, digest: digestOf(committed) }], true)],
      ['a session', () => store.source().agree(other, [{ group: 0, digest: digestOf(committed) }])],
    ] as const;
    for (const [what, fn] of refused) {
      const error = thrown(fn, `${what} of another collection`);
      expectFnnError(error, 'protocol-state', what);
      expect((error as Error).message).toBe("C2's replica belongs to another collection");
      expect({ groups: store.groupStates(), state: await stateOf(store, [0]) }, `${what} changed nothing`).toEqual(before);
    }
    expect(
      store.source().agree(Buffer.alloc(0), [{ group: 0, digest: digestOf(committed) }]),
      'a C1 without an id: digests decide',
    ).toEqual([]);
    expect(store.collectionId()?.equals(ID)).toBe(true);
    expectFnnError(
      thrown(() => openReplica().stageGroup(SHAPE_4x4, committed.replica, Buffer.alloc(15)), 'a 15-byte id'),
      'invalid-input',
      '16 bytes',
    );
    // Emptied, the replica stays bound to its collection.
    store.putGroup(SHAPE_4x4, (await groupChange(0, [])).replica, ID);
    expect(store.count).toBe(0);
    expectFnnError(
      thrown(() => store.stageGroup(SHAPE_4x4, committed.replica, other), 'another id on the emptied replica'),
      'protocol-state',
      'another collection',
    );
  });

  it('opens a replica of schema 3 (coarse columns, no pending changes) and takes changes pending from then on', async () => {
    const path = freshPath();
    const first = openReplica(path);
    const change = await put(first, 0, [record('a', 0)]);
    first.close();
    const raw = new Database(path);
    raw.exec(
      "DROP TABLE replica_pending; DROP TABLE replica_pending_members; UPDATE collection SET value = '3' WHERE name = 'schema_version'",
    );
    raw.close();
    const again = openReplica(path);
    await expectGroup(again, change, 'a schema-3 group after the migration');
    const next = await groupChange(0, [record('a', 0), record('b', 1)]);
    again.stageGroup(SHAPE_4x4, next.replica, again.collectionId()!);
    expect(again.count, 'taken pending').toBe(1);
  });
});
