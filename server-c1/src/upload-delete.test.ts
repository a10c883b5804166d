import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { layoutsToWire, openSealedImage } from '@fnn/shared';
import {
  allocateSlots,
  BF,
  COLLECTION_SIZE,
  D,
  databaseStatus,
  expectCode,
  FAST,
  FIRST_BATCH,
  FNN,
  forget,
  G,
  getGroup,
  grpcError,
  HEIGHT,
  hex,
  KEY_BITS,
  LEAN_SIZE,
  MAX_VALUE,
  query,
  randomImage,
  remember,
  useFixture,
  WIDTH,
  type Fixture,
  WITH_PAPER_LAYOUT,
  PACKED_ONLY,
} from './testing/fixtures';

// The owner's writes on real C1 and C2 daemons: Status, AllocateSlots and
// GetGroup over the base collection, the group-wise Upload (one request per
// group, after C2's PutGroup with all its members), a record joining a partly
// filled group and the group re-encrypted, deletes re-encrypting every group
// losing a member, replacements by lookup tag, and each change checked by
// decrypting both replicas' columns. The owner is the real CollectionWriter
// (testing/fixtures.ts); every test leaves the collection as it found it.

let f: Fixture;

useFixture({ empty: true, lean: true }, (started) => (f = started));

describe('Database service: valid requests', () => {
  it('uses groups of at least 2 records at these sizes, and a collection whose base upload exercises every case', () => {
    expect(G, 'groups of at least 2 records, so the packing is exercised').toBeGreaterThanOrEqual(2);
    expect(FIRST_BATCH, 'the first batch fills a group and part of the next').toBeGreaterThan(G);
    expect(FIRST_BATCH % G, 'the first batch leaves a group partly filled').not.toBe(0);
    expect(COLLECTION_SIZE % G, 'the collection ends in a partly filled group').not.toBe(0);
    expect(LEAN_SIZE % G, 'the lean collection ends in a partly filled group').not.toBe(0);
  });

  it('reports the collections in Status: size, shape, key and a reachable C2; C2 reports its replica', async () => {
    const s = await databaseStatus(f.main.db);
    expect(s, 'Status does not describe the uploaded collection').toEqual({
      records: BigInt(COLLECTION_SIZE),
      width: WIDTH,
      height: HEIGHT,
      maxValue: MAX_VALUE,
      keyBits: KEY_BITS,
      keyFingerprint: f.pk.fingerprint(),
      c2Reachable: true,
      layouts: layoutsToWire([...WITH_PAPER_LAYOUT].sort()),
    });
    const k = await f.keyHolderStatus();
    expect(k.keyFingerprint, 'C2 reports its own key').toBe(f.pk.fingerprint());
    expect(k.replicaRecords, "C2's replica must hold every record").toBe(BigInt(COLLECTION_SIZE));
    expect((await databaseStatus(f.empty.db)).records, 'the second C1 is empty').toBe(0n);
    expect((await databaseStatus(f.empty.db)).width, 'an empty collection has no shape').toBe(0);
    expect((await databaseStatus(f.empty.db)).layouts, 'nor layouts').toEqual([]);
    expect((await databaseStatus(f.lean.db)).layouts, 'the lean collection holds the packed layout only').toEqual(
      layoutsToWire(PACKED_ONLY),
    );
    expect((await databaseStatus(f.lean.db)).records, 'the lean C1 holds its collection').toBe(BigInt(LEAN_SIZE));
    expect((await f.keyHolderStatus(f.lean)).replicaRecords, 'and its C2 the replica').toBe(BigInt(LEAN_SIZE));
  });

  it('allocates slots in group order: a stored record its own slot (stored), new ones the first free slots; nothing is reserved', async () => {
    const { slots } = await allocateSlots(
      f.main.db,
      f.main.collection.map((c) => f.tagOf(c.id)),
    );
    expect(slots, 'each stored record gets its own slot back, in upload order').toEqual(
      f.main.collection.map((_, i) => ({ group: Math.floor(i / G), slot: i % G, stored: true })),
    );
    const next = (i: number) => ({ group: Math.floor((COLLECTION_SIZE + i) / G), slot: (COLLECTION_SIZE + i) % G, stored: false });
    const fresh = [f.tagOf('nobody-a'), f.tagOf('patient-0'), f.tagOf('nobody-b'), f.tagOf('nobody-a')];
    const expected = [next(0), { group: 0, slot: 0, stored: true }, next(1), next(0)];
    expect((await allocateSlots(f.main.db, fresh)).slots, 'new tags fill the free slots in order; a tag named twice gets one slot').toEqual(
      expected,
    );
    expect((await allocateSlots(f.main.db, fresh)).slots, 'asking again gives the same slots (nothing reserved)').toEqual(expected);
    expect(
      (await allocateSlots(f.empty.db, [f.tagOf('x'), f.tagOf('y')])).slots,
      "an empty collection: its group size from the images' shape",
    ).toEqual([
      { group: 0, slot: 0, stored: false },
      { group: 0, slot: 1, stored: false },
    ]);
    expect((await databaseStatus(f.empty.db)).width, "allocating does not fix an empty collection's shape").toBe(0);
    expect((await databaseStatus(f.main.db)).records, 'allocating stores nothing').toBe(BigInt(COLLECTION_SIZE));
  });

  it("returns a group's version and its members' sealed images (GetGroup); an unknown group has none", async () => {
    const groups = Math.ceil(COLLECTION_SIZE / G);
    const versions = new Set<string>();
    for (let g = 0; g < groups; g++) {
      const contents = await getGroup(f.main.db, g);
      expect(contents.version.length, `group ${g} has a 16-byte version`).toBe(16);
      versions.add(hex(contents.version));
      const ids = f.main.collection.slice(g * G, (g + 1) * G).map((c) => c.id);
      expect(
        contents.members.map((m) => m.slot),
        `group ${g}: its members' slots`,
      ).toEqual(ids.map((_, s) => s));
      expect(
        contents.members.map((m) => hex(m.lookupTag)),
        `group ${g}: its members' tags`,
      ).toEqual(ids.map((id) => hex(f.tagOf(id))));
      for (const m of contents.members) {
        const image = openSealedImage(f.recordKey, m.sealedImage);
        expect(image.pixels, `group ${g}: the sealed image of slot ${m.slot}`).toEqual(f.record(f.main, ids[m.slot]).pixels);
      }
    }
    expect(versions.size, 'every group has its own version').toBe(groups);
    const lastChange = (g: number) =>
      [...f.baseBatch.uploads, ...f.baseSingles.flatMap((s) => s.uploads)].filter((u) => u.group!.group === g).at(-1)!;
    expect(hex((await getGroup(f.main.db, 0)).version), "a group's version is the one its last change set").toBe(
      hex(lastChange(0).group!.version),
    );
    expect(hex((await getGroup(f.main.db, 2)).version)).toBe(hex(lastChange(2).group!.version));
    expect(await getGroup(f.main.db, groups), 'the group after the last one is empty').toEqual({ version: Buffer.alloc(0), members: [] });
    expect(await getGroup(f.main.db, 1_000_000), 'an unknown group').toEqual({ version: Buffer.alloc(0), members: [] });
    expect(await getGroup(f.empty.db, 0), 'a group of an empty collection').toEqual({ version: Buffer.alloc(0), members: [] });
  });

  it('uploads the records of one group in one Upload request (after one Replica.PutGroup with all its members)', () => {
    // The first batch: a whole group, then part of the next, in one writer call (two groups in flight at once).
    const sizes = [G, FIRST_BATCH - G];
    const byGroup = <T>(list: T[], groupOf: (x: T) => number) => [...list].sort((a, b) => groupOf(a) - groupOf(b));
    const uploads = byGroup(f.baseBatch.uploads, (u) => u.group!.group);
    const replicaGroups = byGroup(f.baseBatch.replicaGroups, (r) => r.group!.group);
    expect(
      uploads.map((u) => u.group!.group),
      'one Upload per group',
    ).toEqual([0, 1]);
    expect(
      uploads.map((u) => u.records.length),
      'each with all the records of its group',
    ).toEqual(sizes);
    expect(
      replicaGroups.map((r) => r.group!.group),
      'one PutGroup per group',
    ).toEqual([0, 1]);
    expect(f.baseBatch.uploadReplies.map((r) => [r.stored, r.replaced]).sort(), "C1 stores each group's records at once").toEqual(
      sizes.map((n) => [n, 0]).sort(),
    );
    expect(Math.max(...f.baseBatch.uploadReplies.map((r) => Number(r.total))), 'C1 holds the whole batch').toBe(FIRST_BATCH);
    expect(Math.max(...f.baseBatch.replicaReplies.map((r) => Number(r.total))), 'C2 too').toBe(FIRST_BATCH);
    uploads.forEach((u, i) => {
      const ids = f.main.collection.slice(i * G, i * G + sizes[i]).map((c) => c.id);
      const what = `group ${i} of the first batch`;
      expect(u.keyFingerprint, what).toBe(f.pk.fingerprint());
      expect([u.width, u.height, u.maxValue, u.layouts], `${what}: shape and layouts`).toEqual([
        WIDTH,
        HEIGHT,
        MAX_VALUE,
        layoutsToWire(WITH_PAPER_LAYOUT),
      ]);
      expect(
        u.records.map((r) => r.slot),
        `${what}: slots`,
      ).toEqual(ids.map((_, s) => s));
      expect(
        u.records.map((r) => f.recordKey.decryptId(r.encryptedId)),
        `${what}: records`,
      ).toEqual(ids);
      for (const r of u.records) {
        expect(r.pixels.length, `${what}: the paper's layout, one ciphertext per pixel`).toBe(D);
        expect([r.sum.length, r.spread.length], `${what}: and its statistics`).toEqual([f.pk.cipherBytes, f.pk.cipherBytes]);
      }
      expect(u.group!.baseVersion.length, `${what}: the group was empty`).toBe(0);
      f.expectC1Change(u.group, what);
      f.expectReplicaOf(replicaGroups[i], u.group!, [...ids, ...new Array(G - ids.length).fill(null)], what);
    });
    expect(hex(uploads[0].group!.version), 'each change has its own version').not.toBe(hex(uploads[1].group!.version));
  });

  it('re-encrypts a partly filled group when a record joins it, and still finds its earlier members exactly', async () => {
    // In the base upload: patient-5 joined group 1, started by the first batch.
    const joined = f.baseSingles[0];
    expect(joined.uploads[0].group!.group, 'patient-5 joins group 1').toBe(1);
    expect(hex(joined.uploads[0].group!.baseVersion), 'computed from the version of the first batch').toBe(
      hex(f.baseBatch.uploads.find((u) => u.group!.group === 1)!.group!.version),
    );
    expect(
      joined.uploads[0].records.map((r) => r.slot),
      'one new record, in the free slot',
    ).toEqual([FIRST_BATCH % G]);

    // A record joining the last, partly filled group.
    const group = Math.floor(COLLECTION_SIZE / G);
    const before = await getGroup(f.main.db, group);
    const earlier = await f.membersOf(f.main, group);
    expect(earlier.filter((id) => id !== null).length, 'the group is partly filled').toBe(COLLECTION_SIZE % G);
    const joiner = { id: 'joiner', pixels: randomImage() };
    const { sent, outcomes } = await f.ownerUpload(f.main, [joiner]);
    remember(f.main, [joiner]);
    try {
      expect(outcomes, 'the upload succeeds').toEqual([{ ids: ['joiner'], ok: true, replaced: new Set(), total: COLLECTION_SIZE + 1 }]);
      const change = sent.uploads[0].group!;
      expect(change.group, 'the joiner goes into the partly filled group').toBe(group);
      expect(hex(change.baseVersion), 'the change is computed from the version the owner read').toBe(hex(before.version));
      expect(hex(change.version), 'a new version').not.toBe(hex(before.version));
      f.expectC1Change(change, 'the joining upload');
      expect(
        sent.uploads[0].records.map((r) => r.slot),
        'only the new record is uploaded',
      ).toEqual([COLLECTION_SIZE % G]);
      const after = earlier.map((id, slot) => (slot === COLLECTION_SIZE % G ? 'joiner' : id));
      f.expectReplicaOf(sent.replicaGroups[0], change, after, 'the joining upload');
      expect(hex((await getGroup(f.main.db, group)).version), 'C1 holds the new version').toBe(hex(change.version));
      for (const id of earlier.filter((x): x is string => x !== null))
        await f.expectExactNeighbours(
          f.record(f.main, id).pixels,
          FAST,
          2,
          `FAST self-query of ${id}, an earlier member of the re-encrypted group`,
        );
      const { ids } = await f.expectExactNeighbours(joiner.pixels, FAST, 1, 'FAST self-query of the joiner');
      expect(ids, 'the joiner is found').toEqual(['joiner']);
      await f.expectExactNeighbours(randomImage(), FAST, COLLECTION_SIZE + 1, 'FAST over the whole collection with the joiner');
    } finally {
      forget(f.main, ['joiner']);
      expect((await f.ownerDelete(f.main, ['joiner'])).reply.total, 'the joiner is deleted again').toBe(BigInt(COLLECTION_SIZE));
    }
  });

  it('re-encrypts every group losing a member from the members it keeps, drops an emptied group, and the deleted records are gone', async () => {
    const group = Math.floor(COLLECTION_SIZE / G); // partly filled; the doomed fill it and start the next
    const doomed = Array.from({ length: G - (COLLECTION_SIZE % G) + 2 }, (_, i) => ({ id: `doomed-${i}`, pixels: randomImage() }));
    const up = await f.ownerUpload(f.main, doomed);
    remember(f.main, doomed);
    expect(
      up.sent.uploads.map((u) => [u.group!.group, u.records.length]),
      'the doomed fill the last group and start the next',
    ).toEqual([
      [group, G - (COLLECTION_SIZE % G)],
      [group + 1, 2],
    ]);
    await f.expectExactNeighbours(doomed.at(-1)!.pixels, FAST, 1, 'FAST self-query of a record before its delete');
    const kept = (await f.membersOf(f.main, group)).map((id) => (id?.startsWith('doomed-') ? null : id));
    const before = [await getGroup(f.main.db, group), await getGroup(f.main.db, group + 1)];
    const ids = doomed.map((d) => d.id);
    const { reply, sent } = await f.ownerDelete(f.main, ids);
    forget(f.main, ids);
    expect(reply, 'C1 deletes them all').toEqual({ deleted: doomed.length, total: BigInt(COLLECTION_SIZE) });
    expect(sent.deletes.length, 'in one Delete').toBe(1);
    const del = sent.deletes[0];
    expect(del.lookupTags.map(hex), 'naming their lookup tags').toEqual(ids.map((id) => hex(f.tagOf(id))));
    expect(
      del.groups.map((g) => g.group),
      'with a change for every group losing a member',
    ).toEqual([group, group + 1]);
    del.groups.forEach((change, i) => {
      expect(hex(change.baseVersion), `group ${change.group}: computed from the version the owner read`).toBe(hex(before[i].version));
      expect(change.version.length, `group ${change.group}: a new 16-byte version`).toBe(16);
    });
    f.expectC1Change(del.groups[0], 'the group keeping members');
    expect(del.groups[1].columns, 'the emptied group has no columns').toBeUndefined();
    f.expectReplicaOf(sent.replicaGroups[0], del.groups[0], kept, 'the group keeping members');
    f.expectReplicaOf(sent.replicaGroups[1], del.groups[1], new Array(G).fill(null), 'the emptied group');
    expect(sent.replicaReplies.at(-1), 'C2 forgets them too').toEqual({ total: BigInt(COLLECTION_SIZE) });
    expect((await f.keyHolderStatus()).replicaRecords).toBe(BigInt(COLLECTION_SIZE));

    expect(hex((await getGroup(f.main.db, group)).version), "C1 holds the re-encrypted group's new version").toBe(
      hex(del.groups[0].version),
    );
    expect(await getGroup(f.main.db, group + 1), 'and no longer the emptied group').toEqual({ version: Buffer.alloc(0), members: [] });
    expect(
      (await allocateSlots(f.main.db, ids.map(f.tagOf))).slots.map((s) => s.stored),
      'no deleted tag is stored',
    ).toEqual(ids.map(() => false));
    for (const id of kept.filter((x): x is string => x !== null))
      await f.expectExactNeighbours(f.record(f.main, id).pixels, FAST, 2, `FAST self-query of ${id}, kept in the re-encrypted group`);
    for (const d of doomed) {
      const { ids: found } = await f.expectExactNeighbours(d.pixels, FAST, COLLECTION_SIZE, `FAST query (k = all) for ${d.id}'s image`);
      expect(
        found.filter((id) => id.startsWith('doomed-')),
        'a deleted record is never returned',
      ).toEqual([]);
    }
    await f.expectExactNeighbours(doomed[0].pixels, FNN, 1, 'FNN after the delete');
  });

  it('stores, replaces (by lookup tag) and deletes a record at C1 and C2, reporting counts', async () => {
    const first = await f.ownerUpload(f.main, [{ id: 'temporary', pixels: randomImage() }]);
    expect(first.sent.uploadReplies, 'a new record must be stored').toEqual([
      { stored: 1, replaced: 0, total: BigInt(COLLECTION_SIZE + 1) },
    ]);
    expect(first.sent.replicaReplies, 'C2 must store its replica').toEqual([{ total: BigInt(COLLECTION_SIZE + 1) }]);
    const replacement = { id: 'temporary', pixels: randomImage() };
    const again = await f.ownerUpload(f.main, [replacement]);
    remember(f.main, [replacement]);
    try {
      expect(again.sent.uploads[0].group!.group, 'a replacement stays in its group').toBe(first.sent.uploads[0].group!.group);
      expect(again.sent.uploads[0].records[0].slot, 'and keeps its slot').toBe(first.sent.uploads[0].records[0].slot);
      expect(hex(again.sent.uploads[0].group!.baseVersion), "computed from the first upload's version").toBe(
        hex(first.sent.uploads[0].group!.version),
      );
      expect(again.sent.uploadReplies, 'the same lookup tag must be replaced').toEqual([
        { stored: 0, replaced: 1, total: BigInt(COLLECTION_SIZE + 1) },
      ]);
      expect(again.outcomes, 'the owner hears of the replacement').toEqual([
        { ids: ['temporary'], ok: true, replaced: new Set(['temporary']), total: COLLECTION_SIZE + 1 },
      ]);
      expect(again.sent.replicaReplies, 'C2 must replace its replica').toEqual([{ total: BigInt(COLLECTION_SIZE + 1) }]);
      // Both replicas hold the new content: a fast self-query finds it.
      await f.expectExactNeighbours(replacement.pixels, FAST, 1, 'fast self-query of the replaced record');
      await f.expectExactNeighbours(replacement.pixels, BF, 1, 'bf self-query of the replaced record');
    } finally {
      forget(f.main, ['temporary']);
      const deleted = await f.ownerDelete(f.main, ['temporary']);
      expect(deleted.reply, 'delete by lookup tag').toEqual({ deleted: 1, total: BigInt(COLLECTION_SIZE) });
      expect(deleted.sent.replicaReplies, 'C2 must forget the record too').toEqual([{ total: BigInt(COLLECTION_SIZE) }]);
    }
    const gone = await grpcError(f.ownerDelete(f.main, ['temporary']), 'deleting a deleted record');
    expectCode(gone, Code.NOT_FOUND, 'deleting a deleted record');
  });

  it('deletes a record named twice in one delete once, and leaves both replicas in agreement', async () => {
    const twice = { id: 'named-twice', pixels: randomImage() };
    await f.ownerUpload(f.main, [twice]);
    const outcome = await f.ownerDelete(f.main, [twice.id, twice.id]).then(
      ({ reply }) => reply,
      (error: ServiceError) => `refused: ${error.details}`,
    );
    const fast = await query(f.main.db, await f.fastRequest(randomImage())).then(
      () => 'answered',
      (error: ServiceError) => `refused: ${error.details}`,
    );
    if (typeof outcome === 'string') await f.ownerDelete(f.main, [twice.id]); // leave the collection as it was
    expect(outcome, 'the record is deleted (once)').toEqual({ deleted: 1, total: BigInt(COLLECTION_SIZE) });
    expect(fast, 'C1 and C2 hold the same groups after the delete').toBe('answered');
    await f.expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the delete');
  });
});
