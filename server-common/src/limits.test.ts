import { describe, expect, it } from 'vitest';
import { FnnError } from '@fnn/shared';
import {
  checkGroupVersion,
  checkImageSize,
  checkLookupTag,
  checkLookupTags,
  checkPixelDepth,
  LOOKUP_TAG_BYTES,
  MAX_DIMENSION,
  MAX_PIXEL_VALUE,
} from './limits';

// The wire limits both daemons enforce: each accepted at its edge and refused
// one past it, with invalid-input and a message that names the limit.

function refusal(fn: () => unknown, what: string): FnnError {
  try {
    fn();
  } catch (e) {
    expect(e instanceof FnnError, `${what}: expected an FnnError, got ${String(e)}`).toBe(true);
    expect((e as FnnError).kind, `${what}: wrong kind`).toBe('invalid-input');
    return e as FnnError;
  }
  throw new Error(`${what} was accepted, but it must be refused`);
}

describe('limits', () => {
  it("are the protocols' bounds: 512x512 images of at most 16 bits, 32-byte lookup tags", () => {
    expect(MAX_DIMENSION).toBe(512 * 512);
    expect(MAX_PIXEL_VALUE).toBe(65535);
    expect(LOOKUP_TAG_BYTES).toBe(32);
  });

  it('accept images up to 512x512 pixels and refuse larger, empty or fractional sizes', () => {
    checkImageSize(1, 1);
    checkImageSize(512, 512);
    checkImageSize(1, MAX_DIMENSION);
    expect(refusal(() => checkImageSize(512, 513), '512x513').message).toBe(`images above ${MAX_DIMENSION} pixels are not supported`);
    for (const [w, h] of [
      [0, 4],
      [4, 0],
      [-1, 4],
      [1.5, 2],
    ])
      expect(refusal(() => checkImageSize(w, h), `${w}x${h}`).message).toBe('image width and height must be positive');
  });

  it('accept pixel depths 1..65535 and refuse others', () => {
    checkPixelDepth(1);
    checkPixelDepth(255);
    checkPixelDepth(65535);
    for (const depth of [0, 65536, -1])
      expect(refusal(() => checkPixelDepth(depth), `depth ${depth}`).message).toBe('pixel depth must be between 1 and 65535');
  });

  it('accept only 32-byte lookup tags, naming the record when told', () => {
    checkLookupTag(new Uint8Array(32));
    checkLookupTags([new Uint8Array(32), new Uint8Array(32)]);
    expect(refusal(() => checkLookupTag(new Uint8Array(31)), '31 bytes').message).toBe('lookup tag must be 32 bytes');
    expect(refusal(() => checkLookupTag(new Uint8Array(33), 'record 4'), '33 bytes').message).toBe('record 4: lookup tag must be 32 bytes');
    refusal(() => checkLookupTags([new Uint8Array(32), new Uint8Array(0)]), 'an empty tag after a good one');
  });

  it('accept only 16-byte group versions', () => {
    checkGroupVersion(new Uint8Array(16));
    for (const n of [0, 15, 17])
      expect(refusal(() => checkGroupVersion(new Uint8Array(n)), `${n} bytes`).message).toBe('a group change needs a 16-byte version');
  });
});
