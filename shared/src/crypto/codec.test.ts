import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bigintToBytes, bytesToBigint, bytesToCipher, cipherToBytes } from './codec';

const randomBig = (bytes: number) => BigInt('0x' + randomBytes(bytes).toString('hex'));

describe('cipherToBytes / bytesToCipher', () => {
  it('writes big-endian bytes of exactly the requested width and reads them back', () => {
    for (const c of [1n, 255n, 256n, randomBig(64), (1n << 1023n) + 1n, (1n << 1024n) - 1n]) {
      const b = cipherToBytes(c, 128);
      expect(b).toHaveLength(128);
      expect(bytesToCipher(b)).toBe(c);
    }
  });

  it('pads small values with leading zero bytes', () => {
    expect(Array.from(cipherToBytes(0x0102n, 4))).toEqual([0, 0, 1, 2]);
    expect(Array.from(cipherToBytes(0n, 2))).toEqual([0, 0]);
  });

  it('throws when the value does not fit in the width', () => {
    expect(() => cipherToBytes(1n << 32n, 4)).toThrow(/does not fit in 4 bytes/);
    expect(() => cipherToBytes(0x1_0000n, 2)).toThrow(RangeError);
    expect(Array.from(cipherToBytes(0xffffn, 2))).toEqual([255, 255]);
  });

  it('rejects negative values and non-positive widths', () => {
    expect(() => cipherToBytes(-1n, 4)).toThrow(/non-negative/);
    expect(() => cipherToBytes(1n, 0)).toThrow(/width/);
    expect(() => cipherToBytes(1n, 1.5)).toThrow(/width/);
  });
});

describe('bigintToBytes / bytesToBigint', () => {
  it('is minimal big-endian: no leading zero byte', () => {
    expect(Array.from(bigintToBytes(1n))).toEqual([1]);
    expect(Array.from(bigintToBytes(0x1234n))).toEqual([0x12, 0x34]);
    expect(Array.from(bigintToBytes(0x12345n))).toEqual([0x01, 0x23, 0x45]);
    expect(Array.from(bigintToBytes(256n))).toEqual([1, 0]);
  });

  it('encodes 0 as the empty array and decodes the empty array as 0', () => {
    expect(bigintToBytes(0n)).toHaveLength(0);
    expect(bytesToBigint(new Uint8Array(0))).toBe(0n);
  });

  it('round-trips random values of many sizes exactly', () => {
    for (let bytes = 1; bytes <= 520; bytes += 37) {
      const x = randomBig(bytes);
      expect(bytesToBigint(bigintToBytes(x))).toBe(x);
    }
  });

  it('accepts leading zero bytes when decoding', () => {
    expect(bytesToBigint(Uint8Array.from([0, 0, 7]))).toBe(7n);
  });

  it('reads only the view it is given, not the whole underlying buffer', () => {
    const backing = Uint8Array.from([9, 9, 1, 2, 9]);
    expect(bytesToBigint(backing.subarray(2, 4))).toBe(0x0102n);
  });

  it('rejects negative values', () => {
    expect(() => bigintToBytes(-5n)).toThrow(/non-negative/);
  });
});
