import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { plaintextNearest, type GroupOutcome } from '@fnn/shared';
import {
  BF,
  COLLECTION_SIZE,
  databaseStatus,
  expectCode,
  FAST,
  FNN,
  forget,
  grpcError,
  query,
  randomImage,
  remember,
  SHAPE,
  useFixture,
  upload,
  type Fixture,
} from './testing/fixtures';

// C1's collection and C2's replica that disagree (a change that reached one
// of them only, two owners changing a group at once): a FAST query is refused with
// FAILED_PRECONDITION rather than answered wrongly, FNN and BF still answer
// exactly, and completing the change (or the owner's rerun) fixes it. A
// change C2 took and C1 failed is never served (replica-changes.test.ts has
// every failure point of a change).

let f: Fixture;

useFixture({}, (started) => (f = started));

// ----- the two replicas must agree -----

describe('C1 and C2 replicas that disagree', () => {
  it('fail a FAST query with FAILED_PRECONDITION naming the difference while FNN works; completing the change at C2 fixes it', async () => {
    const pixels = randomImage();
    const { sent } = await f.ownerUpload(f.main, [{ id: 'c1-only', pixels }], { c2: false });
    expect(sent.uploadReplies[0].total, 'C1 stored the record').toBe(BigInt(COLLECTION_SIZE + 1));
    expect((await f.keyHolderStatus()).replicaRecords, 'C2 did not').toBe(BigInt(COLLECTION_SIZE));
    remember(f.main, [{ id: 'c1-only', pixels }]);
    try {
      const error = await grpcError(query(f.main.db, await f.fastRequest(randomImage())), 'a FAST query while the replicas differ');
      expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query while the replicas differ');
      expect(error.details, 'the refusal must say that the replicas differ').toMatch(/replicas.*differ/);
      expect(error.details, 'the refusal must say it comes from C2').toMatch(/C2/);
      // The paper protocols do not use the replica at C2.
      await f.expectExactNeighbours(pixels, FNN, 1, 'FNN while the replicas differ');
      await f.expectExactNeighbours(randomImage(), BF, 2, 'BF while the replicas differ');
      expect(await f.putGroup(sent.replicaGroups[0]), 'the owner completes the change at C2 (served once committed)').toEqual({
        total: BigInt(COLLECTION_SIZE + 1),
      });
      await f.expectExactNeighbours(pixels, FAST, 1, 'FAST once the replicas agree again');
      expect((await f.keyHolderStatus()).replicaRecords, 'the session found C1 holding the pending change: C2 serves it').toBe(
        BigInt(COLLECTION_SIZE + 1),
      );
    } finally {
      forget(f.main, ['c1-only']);
      await f.ownerDelete(f.main, ['c1-only']);
    }
    await f.expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the record was deleted on both');
  });

  it('fail a FAST query after a delete that reached C1 only, until C2 gets the re-encrypted group too', async () => {
    const extra = { id: 'deleted-at-c1-only', pixels: randomImage() };
    const up = await f.ownerUpload(f.main, [extra]);
    expect(up.sent.uploadReplies[0].total).toBe(BigInt(COLLECTION_SIZE + 1));
    expect(up.sent.uploads[0].records[0].slot, 'the record shares its group with others').toBeGreaterThan(0);
    const { reply, sent } = await f.ownerDelete(f.main, [extra.id], { c2: false });
    expect(reply.total).toBe(BigInt(COLLECTION_SIZE));
    expect((await f.keyHolderStatus()).replicaRecords, 'C2 still holds the record').toBe(BigInt(COLLECTION_SIZE + 1));
    const error = await grpcError(query(f.main.db, await f.fastRequest(randomImage())), 'a FAST query after a delete at C1 only');
    expectCode(error, Code.FAILED_PRECONDITION, 'a FAST query after a delete at C1 only');
    expect(error.details).toMatch(/replicas.*differ/);
    await f.expectExactNeighbours(randomImage(), FNN, 1, 'FNN after a delete at C1 only');
    expect(await f.putGroup(sent.replicaGroups[0]), 'C2 gets the re-encrypted group').toEqual({ total: BigInt(COLLECTION_SIZE) });
    await f.expectExactNeighbours(randomImage(), FAST, 1, 'FAST once C2 has the group as C1');
    expect((await f.keyHolderStatus()).replicaRecords, 'and serves it from the session on').toBe(BigInt(COLLECTION_SIZE));
  });

  it('fail a FAST query, rather than answer wrongly, when C2 holds another change of a group (a replacement that reached C2 only)', async () => {
    // The owner replaces a record: C2's replica is set first, then C1's upload
    // fails (C1 down, or refused). Both servers hold the same tags in the same
    // slots, with different images: the versions tell them apart.
    const target = f.main.collection[4];
    const { sent } = await f.ownerUpload(f.main, [{ id: target.id, pixels: randomImage() }], { c1: false });
    expect(sent.replicaReplies, 'C2 took the replacement').toEqual([{ total: BigInt(COLLECTION_SIZE) }]);
    try {
      const outcome = await query(f.main.db, await f.fastRequest(target.pixels, { k: COLLECTION_SIZE })).then(
        (reply) => ({ ids: f.openResults(reply).map((r) => r.id), error: undefined }),
        (error: ServiceError) => ({ ids: undefined, error }),
      );
      const expected = plaintextNearest(f.main.collection, target.pixels, COLLECTION_SIZE).map((e) => e.id);
      expect(
        outcome.error
          ? Code[outcome.error.code]
          : `an answer (${outcome.ids!.join(' ') === expected.join(' ') ? 'right by luck' : 'WRONG'}: ${outcome.ids!.join(' ')})`,
        'replicas holding different changes of a group must be refused like any other disagreement',
      ).toBe('FAILED_PRECONDITION');
    } finally {
      // Running the upload again completes it (here with the original image, so the collection is as it was).
      await f.ownerUpload(f.main, [target]);
    }
    await f.expectExactNeighbours(target.pixels, FAST, 1, 'FAST once both hold the same change');
  });

  it('refuses a change computed from a group version that is no longer current (two owners at once), and the rerun succeeds', async () => {
    const late = { id: 'late-owner', pixels: randomImage() };
    const stale = await f.captureUpload(f.main, [late]); // read the group, then another change lands
    const early = { id: 'early-owner', pixels: randomImage() };
    await f.ownerUpload(f.main, [early]);
    remember(f.main, [early]);
    try {
      const error = await grpcError(upload(f.main.db, stale.uploads[0]), 'an upload computed from a stale group version');
      expectCode(error, Code.FAILED_PRECONDITION, 'an upload computed from a stale group version');
      expect((await databaseStatus(f.main.db)).records, 'the stale upload stored nothing').toBe(BigInt(COLLECTION_SIZE + 1));
      await f.ownerUpload(f.main, [late]);
      remember(f.main, [late]);
      await f.expectExactNeighbours(late.pixels, FAST, 1, 'FAST after the rerun');
      await f.expectExactNeighbours(early.pixels, FAST, 1, "FAST still finds the other owner's record");
    } finally {
      const ids = f.main.collection.filter((c) => c.id === 'late-owner' || c.id === 'early-owner').map((c) => c.id);
      forget(f.main, ids);
      await f.ownerDelete(f.main, ids);
    }
    await f.expectExactNeighbours(randomImage(), FAST, 2, 'FAST after both were deleted');
  });

  it('lets two owners upload into the same group at once: the one whose change lands second plans its group again, and both replicas agree', async () => {
    const late = { id: 'racing-late', pixels: randomImage() };
    const early = { id: 'racing-early', pixels: randomImage() };
    const link = f.ownerLink(f.main, { c1: true, c2: true });
    const read = link.getGroup;
    let raced = false;
    // Right after the late owner reads its group, the early owner's upload into the same free slot lands.
    link.getGroup = async (req) => {
      const contents = await read(req);
      if (!raced) {
        raced = true;
        await f.ownerUpload(f.main, [early]);
      }
      return contents;
    };
    const outcomes: GroupOutcome[] = [];
    await f.writerOver(link, f.main.layouts).upload([{ id: late.id, image: { ...SHAPE, pixels: late.pixels } }], (o) => outcomes.push(o));
    remember(f.main, [early, late]);
    try {
      expect(raced, 'the race happened').toBe(true);
      expect(
        outcomes.map((o) => o.ok),
        `the late owner's upload ends stored (${outcomes.map((o) => (o.ok ? 'ok' : String(o.error))).join('; ')})`,
      ).toEqual([true]);
      expect(link.sent.uploads.length, 'its first change was refused as stale, the second stored').toBe(2);
      await f.expectExactNeighbours(late.pixels, FAST, 1, "FAST finds the late owner's record");
      await f.expectExactNeighbours(early.pixels, FAST, 1, "FAST finds the early owner's record");
      await f.expectExactNeighbours(
        randomImage(),
        FAST,
        f.main.collection.length,
        'FAST over everything: both replicas agree on every group',
      );
    } finally {
      forget(f.main, [early.id, late.id]);
      await f.ownerDelete(f.main, [early.id, late.id]);
    }
  });
});
