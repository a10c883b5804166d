import { describe, expect, it } from 'vitest';
// @ts-expect-error TS1479 under "module": "node16"; see the same import in paillier.ts
import { modPow } from 'bigint-crypto-utils';
import { valuesToFixedBlob } from './codec';
import { multiExp } from './multiexp';
import { native } from './native';
import { SecretKey, PublicKey, generateKeyPair } from './paillier';
import { randomBelow, randomBits } from './random';

// The C module against BigInt arithmetic: Montgomery products at limb counts
// from 1 to 64 (and moduli that do not fill their top limb), the owner's CRT
// encryption for keys whose primes differ in length, and the argument checks.

const naive = (bases: bigint[], exps: bigint[], m: bigint) => bases.reduce((acc, b, i) => (acc * modPow(b, exps[i], m)) % m, 1n);

describe('native multiExp (Montgomery products on 64-bit limbs)', () => {
  it('equals BigInt arithmetic for odd moduli of 3 to 4096 bits, at and just past limb boundaries', () => {
    for (const bits of [3, 63, 64, 65, 127, 128, 129, 520, 1023, 2048, 4096]) {
      const m = randomBits(bits) | (1n << BigInt(bits - 1)) | 1n;
      const count = bits > 1024 ? 9 : 40;
      const bases = Array.from({ length: count }, (_, i) => (i === 0 ? 0n : i === 1 ? m - 1n : randomBelow(m)));
      const exps = Array.from({ length: count }, (_, i) => (i === 2 ? 0n : randomBits(1 + (i % 70))));
      expect(multiExp(bases, exps, m), `${bits}-bit modulus`).toBe(naive(bases, exps, m));
    }
  });

  it('refuses an even modulus, a base not below the modulus and mismatched buffers', () => {
    expect(() => multiExp([3n], [5n], 10n)).toThrow(RangeError);
    expect(() => multiExp([11n], [5n], 11n)).toThrow(RangeError);
    const m = valuesToFixedBlob([11n], 1);
    expect(() => native.multiExp(m, Buffer.from([12]), 1, Buffer.from([1]), 1, 4)).toThrow(/not below the modulus/);
    expect(() => native.multiExp(m, Buffer.from([2, 3]), 1, Buffer.from([1]), 1, 4)).toThrow(/equal in number/);
    expect(() => native.multiExp(m, Buffer.from([2]), 1, Buffer.from([1]), 1, 0)).toThrow(/window/);
    expect(() => (native.multiExp as (...a: unknown[]) => Buffer)('11', Buffer.from([2]), 1, Buffer.from([1]), 1, 4)).toThrow(RangeError);
  });
});

describe('the C module at its boundary', () => {
  it('answers or throws a RangeError for 2000 random argument shapes, and never crashes the process', () => {
    const int = (n: number) => Math.floor(Math.random() * n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    let answered = 0;
    for (let i = 0; i < 2000; i++) {
      const m = bytes(int(40));
      const bw = int(12);
      const ew = int(12);
      const count = int(5);
      const bases = bytes(count * bw + (i % 7 === 0 ? 1 : 0));
      const exps = bytes(count * ew + (i % 11 === 0 ? 1 : 0));
      try {
        const window = [0, 1, 2, 3, 5, 8, 21, 32][int(8)]; // wide windows are valid but slow: 2^c buckets per window
        const out = native.multiExp(m, bases, bw, exps, ew, window);
        expect(out.length).toBe(m.length);
        answered++;
      } catch (error) {
        expect(error, `case ${i}`).toBeInstanceOf(RangeError);
      }
    }
    expect(answered, 'some random cases are valid and answered').toBeGreaterThan(0);
  });
});

/** A key whose primes have different bit lengths (paillier-bigint does produce such keys). */
function unequalPrimesKey(): SecretKey {
  // p (257 bits) and q (256 bits): primes found once with bigint-crypto-utils.
  const p = 0x17e88f5a1f41c3bf49d7648f000af9fdcfd15f9461a50db7813aa9bd4f694bcdfn;
  const q = 0x9fa3030781dce1eae86e36209bef37f5e55a4cb7f9cd1a3f06f238e8e0c0b80dn;
  return new SecretKey(p, q, new PublicKey(p * q));
}

describe("the owner's CRT encryption in the C module (SecretKey.encryptMany)", () => {
  it('decrypts to every plaintext, including 0, 1, N-1 and negatives, for a 1024-bit key', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(1024);
    const values = [0n, 1n, pk.n - 1n, -1n, -12345n, ...Array.from({ length: 200 }, () => randomBelow(pk.n))];
    const c = sk.encryptMany(values);
    expect(c.map((x) => sk.decrypt(x))).toEqual(values.map((v) => pk.encode(v)));
    expect(pk.areValidCiphertexts(c)).toBe(true);
  });

  it('works for a key whose primes differ in length (p^2 one limb longer than q^2)', () => {
    const sk = unequalPrimesKey();
    const values = Array.from({ length: 100 }, () => randomBelow(sk.publicKey.n));
    expect(sk.encryptMany(values).map((c) => sk.decrypt(c))).toEqual(values);
  });

  it('randomises: one plaintext encrypted many times gives distinct ciphertexts', async () => {
    const { secretKey: sk } = await generateKeyPair(512);
    const c = sk.encryptMany(new Array<bigint>(50).fill(7n));
    expect(new Set(c).size).toBe(50);
    expect(c.every((x) => sk.decrypt(x) === 7n)).toBe(true);
  });

  it('refuses a plaintext not below N, unequal counts, widths that do not match the key and a foreign handle', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(512);
    sk.encrypt(1n); // builds the tables
    const handle = (sk as unknown as { ownerEncryptor(): Parameters<typeof native.ownerEncrypt>[0] }).ownerEncryptor();
    const width = Math.ceil(pk.bits / 8);
    const tooBig = valuesToFixedBlob([pk.n], width);
    expect(() => native.ownerEncrypt(handle, tooBig, width, Buffer.alloc(32), 32, pk.cipherBytes)).toThrow(/not below N$/);
    const ok = valuesToFixedBlob([5n, 6n], width);
    expect(() => native.ownerEncrypt(handle, ok, width, Buffer.alloc(32), 32, pk.cipherBytes)).toThrow(/equal in number/);
    expect(() => native.ownerEncrypt(handle, ok, width, Buffer.alloc(128), 64, pk.cipherBytes)).toThrow(/widths/);
    expect(() => native.ownerEncrypt({} as never, ok, width, Buffer.alloc(64), 32, pk.cipherBytes)).toThrow(/encryptor/);
  });
});
