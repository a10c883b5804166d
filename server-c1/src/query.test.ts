import { describe, expect, it } from 'vitest';
import { plaintextNearest } from '@fnn/shared';
import {
  BF,
  COLLECTION_SIZE,
  FAST,
  FNN,
  isFast,
  query,
  randomImage,
  useFixture,
  TWIN_OF,
  type Fixture,
  neighbourCount,
} from './testing/fixtures';

// Query on real C1 and C2 daemons, for each protocol (FAST, unspecified =
// FAST, FNN, BF): the answers are exactly plaintextNearest's (ids, order and
// the pixels the doctor recovers), for k = 1, 3 and all, a stored image finds
// itself, a tie is broken by upload order (an image and its later copy), and
// k = 0 is k = 1.

let f: Fixture;

useFixture({}, (started) => (f = started));

describe('Query: exact answers', () => {
  it.each([
    ['FAST', FAST, 1],
    ['FAST', FAST, 3],
    ['FNN', FNN, 1],
    ['FNN', FNN, 3],
    ['BF', BF, 1],
    ['BF', BF, 3],
  ])('answers a %s query (%s) with k = %i with the exact plaintext nearest neighbours and their pixels', async (name, protocol, k) => {
    await f.expectExactNeighbours(randomImage(), protocol, k, `${name} k=${k}`);
  });

  it('answers a FAST query for every record (k = all) in the exact order', async () => {
    await f.expectExactNeighbours(randomImage(), FAST, COLLECTION_SIZE, 'FAST k=n');
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('finds a stored image itself (distance 0) with %s', async (name, protocol) => {
    const target = f.main.collection[5];
    const { ids } = await f.expectExactNeighbours(target.pixels, protocol, 1, `${name} self-query`);
    expect(ids, `${name}: a stored image must be its own nearest neighbour`).toEqual([target.id]);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('breaks a tie by upload order with %s (an image and its later copy)', async (name, protocol) => {
    const { pixels } = f.record(f.main, TWIN_OF.original);
    const { ids } = await f.expectExactNeighbours(pixels, protocol, 2, `${name} tie`);
    expect(ids, `${name}: the earlier upload first`).toEqual([TWIN_OF.original, TWIN_OF.twin]);
    const { ids: one } = await f.expectExactNeighbours(pixels, protocol, 1, `${name} tie, k = 1`);
    expect(one, `${name}: k = 1 returns the earlier of the two`).toEqual([TWIN_OF.original]);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
  ])('treats k = 0 as k = 1 (%s)', async (_name, protocol) => {
    const pixels = randomImage();
    const request = await f.requestFor(pixels, protocol, 0);
    const reply = await query(f.main.db, request);
    expect(neighbourCount(reply), 'k = 0 must return exactly one neighbour').toBe(1);
    const got = isFast(protocol) ? f.openResults(reply) : await f.redeem(reply);
    expect(got[0].id).toBe(plaintextNearest(f.main.collection, pixels, 1)[0].id);
  });
});
