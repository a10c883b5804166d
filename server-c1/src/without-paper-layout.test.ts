import { status as Code } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { layoutsToWire } from '@fnn/shared';
import {
  BF,
  databaseStatus,
  expectCode,
  FAST,
  FNN,
  forget,
  G,
  grpcError,
  LEAN_SIZE,
  paperRequest,
  query,
  randomImage,
  remember,
  useFixture,
  type Fixture,
  PACKED_ONLY,
} from './testing/fixtures';

// A collection uploaded without the paper's per-pixel layout (paper_layout =
// false), on its own C1 and C2: records without pixels, sum or spread; FAST
// answers exactly; FNN and BF are refused with FAILED_PRECONDITION; deletes
// and uploads re-encrypt its groups like any collection's.

let f: Fixture;

useFixture({ lean: true }, (started) => (f = started));

describe("A collection uploaded without the paper's layout (paper_layout = false)", () => {
  it('is uploaded as records without pixels, sum or spread, with the packed columns of their groups', async () => {
    const sent = await f.captureUpload(f.lean, [{ id: 'lean-spare', pixels: randomImage() }]);
    const u = sent.uploads[0];
    expect(u.layouts, 'the upload says it carries the packed layout only').toEqual(layoutsToWire(PACKED_ONLY));
    expect(
      u.records.map((r) => [r.pixels.length, r.sum.length, r.spread.length]),
      'no per-pixel ciphertexts',
    ).toEqual([[0, 0, 0]]);
    expect(u.records[0].sealedImage.length, 'but the sealed image the fast protocol returns').toBeGreaterThan(0);
    f.expectC1Change(u.group, 'a lean upload');
    expect((await databaseStatus(f.lean.db)).records, 'capturing sends nothing').toBe(BigInt(LEAN_SIZE));
  });

  it('answers FAST queries exactly (k = 1, k = all, a stored image itself)', async () => {
    await f.expectExactNeighbours(randomImage(), FAST, 1, 'lean FAST k=1', f.lean);
    await f.expectExactNeighbours(randomImage(), FAST, LEAN_SIZE, 'lean FAST k=all', f.lean);
    const target = f.lean.collection[1];
    const { ids } = await f.expectExactNeighbours(target.pixels, FAST, 1, 'lean FAST self-query', f.lean);
    expect(ids).toEqual([target.id]);
  });

  it.each([
    ['FNN', FNN],
    ['BF', BF],
  ])('refuses %s queries with FAILED_PRECONDITION (there is nothing to run them on)', async (name, protocol) => {
    const error = await grpcError(
      query(f.lean.db, paperRequest(await f.wireQuery(randomImage()), protocol)),
      `${name} on a lean collection`,
    );
    expectCode(error, Code.FAILED_PRECONDITION, `${name} on a lean collection`);
    expect(error.details, 'the refusal points to the fast protocol').toMatch(/fast/);
  });

  it('re-encrypts its groups on delete and on upload like any collection', async () => {
    const gone = f.lean.collection[0];
    const { reply, sent } = await f.ownerDelete(f.lean, [gone.id]);
    forget(f.lean, [gone.id]);
    expect(reply, 'the delete').toEqual({ deleted: 1, total: BigInt(LEAN_SIZE - 1) });
    f.expectC1Change(sent.deletes[0].groups[0], 'a lean delete');
    for (const c of f.lean.collection.slice(0, G - 1))
      await f.expectExactNeighbours(c.pixels, FAST, 1, `lean FAST self-query of ${c.id} after the delete`, f.lean);
    // Uploaded again: into its freed slot, last in upload order.
    const { sent: up } = await f.ownerUpload(f.lean, [gone]);
    remember(f.lean, [gone]);
    expect([up.uploads[0].group!.group, up.uploads[0].records[0].slot], 'back into the freed slot').toEqual([0, 0]);
    const { ids } = await f.expectExactNeighbours(gone.pixels, FAST, LEAN_SIZE, 'lean FAST k=all after the upload', f.lean);
    expect(ids[0]).toBe(gone.id);
  });
});
