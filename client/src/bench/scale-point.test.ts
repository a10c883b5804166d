import { describe, expect, it } from 'vitest';
import { isExactAnswer } from './scale-point';

describe('scale point: an answer is exact', () => {
  const distances = new Map([
    ['a.png', 40n],
    ['b.png', 40n],
    ['c.png', 41n],
  ]);
  const distanceOf = (id: string) => distances.get(id);

  it('when its distance is the plaintext nearest distance and its image lies at that distance', () => {
    expect(isExactAnswer({ id: 'a.png', distance: '40' }, { distance: 40n }, distanceOf)).toBe(true);
    // A tie between distinct images: either is the nearest neighbour.
    expect(isExactAnswer({ id: 'b.png', distance: '40' }, { distance: 40n }, distanceOf)).toBe(true);
  });

  it('not when the distance differs, the image is farther than it claims, the ID is unknown, or there is no answer', () => {
    expect(isExactAnswer({ id: 'c.png', distance: '41' }, { distance: 40n }, distanceOf)).toBe(false);
    expect(isExactAnswer({ id: 'c.png', distance: '40' }, { distance: 40n }, distanceOf)).toBe(false);
    expect(isExactAnswer({ id: 'z.png', distance: '40' }, { distance: 40n }, distanceOf)).toBe(false);
    expect(isExactAnswer(undefined, { distance: 40n }, distanceOf)).toBe(false);
  });
});
