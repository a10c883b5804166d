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

// The reference paths (BigInt, the code the C module replaced) are private
// methods of the keys; the tests reach them by name.
const referenceDecrypt = (sk: SecretKey, c: bigint) => (sk as unknown as { referenceDecrypt(c: bigint): bigint }).referenceDecrypt(c);
const referenceEncrypt = (pk: PublicKey, m: bigint, a: bigint) =>
  (pk as unknown as { referenceEncrypt(m: bigint, a: bigint): bigint }).referenceEncrypt(m, a);
const encryptWithExponents = (pk: PublicKey, values: bigint[], exponents: bigint[]) =>
  (pk as unknown as { encryptWithExponents(v: bigint[], e: Buffer): bigint[] }).encryptWithExponents(
    values,
    valuesToFixedBlob(exponents, 32),
  );
const decryptorOf = (sk: SecretKey) => (sk as unknown as { decryptor(): Parameters<typeof native.crtDecrypt>[0] }).decryptor();
const encryptorOf = (pk: PublicKey) => (pk as unknown as { encryptor(): Parameters<typeof native.publicEncrypt>[0] }).encryptor();
const factorsOf = (sk: SecretKey) => {
  const { p, q } = sk.toJSON();
  return { p: BigInt(p), q: BigInt(q) };
};

describe('CRT decryption in the C module (SecretKey.decrypt) against the BigInt reference', () => {
  it('agrees on random ciphertexts and on 1, 2, N-1, N+1, N^2-2 and N^2-1, for 512- and 1024-bit keys and unequal primes', async () => {
    const keys = [(await generateKeyPair(512)).secretKey, (await generateKeyPair(1024)).secretKey, unequalPrimesKey()];
    for (const sk of keys) {
      const { n, n2 } = sk.publicKey;
      const edges = [1n, 2n, n - 1n, n + 1n, n2 - 2n, n2 - 1n];
      const cs = [...edges, ...Array.from({ length: 60 }, () => 1n + randomBelow(n2 - 1n))];
      expect(sk.decryptMany(cs), `${sk.publicKey.bits}-bit key`).toEqual(cs.map((c) => referenceDecrypt(sk, c)));
      expect(sk.decrypt(n + 1n)).toBe(1n); // 1 + N = E(1) with randomiser 1
      expect(sk.decrypt(1n)).toBe(0n);
    }
  });

  it('decrypts every kind of encryption to its plaintext, one at a time and in batches (0 to 200 per call)', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(1024);
    const values = [0n, 1n, pk.n - 1n, pk.n / 2n, ...Array.from({ length: 197 }, () => randomBelow(pk.n))];
    const cs = [...pk.encryptMany(values.slice(0, 100)), ...sk.encryptMany(values.slice(100))];
    expect(sk.decryptMany(cs)).toEqual(values);
    expect(cs.slice(0, 5).map((c) => sk.decrypt(c))).toEqual(values.slice(0, 5));
    expect(sk.decryptMany([])).toEqual([]);
    expect(sk.decrypt(pk.encryptStandard(-3n))).toBe(pk.n - 3n);
  });

  it('refuses 0, N^2 and above, and every value sharing a factor with N (p, q, N, kN), with a RangeError', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(512);
    const { p, q } = factorsOf(sk);
    for (const c of [0n, -1n, pk.n2, pk.n2 + 1n]) expect(() => sk.decrypt(c)).toThrow(/out of range/);
    for (const c of [p, q, pk.n, 5n * pk.n, p * p, pk.n2 - p, pk.n2 - pk.n]) {
      expect(() => sk.decrypt(c)).toThrow(RangeError);
      expect(() => sk.decrypt(c)).toThrow(/shares a factor with N/);
    }
    // One bad value refuses the whole batch, whatever its position.
    expect(() => sk.decryptMany([pk.encrypt(1n), q, pk.encrypt(2n)])).toThrow(/shares a factor with N/);
    // The message names no number.
    try {
      sk.decrypt(p);
    } catch (error) {
      expect((error as Error).message).not.toMatch(/[0-9]{6}/);
    }
  });

  it('crtDecrypt checks its buffers: whole ciphertexts, widths that fit the key, a decryptor handle', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(512);
    const dec = decryptorOf(sk);
    const cw = pk.cipherBytes;
    const one = valuesToFixedBlob([pk.n + 1n], cw);
    expect(native.crtDecrypt(dec, one, cw, 64)).toEqual(valuesToFixedBlob([1n], 64));
    expect(() => native.crtDecrypt(dec, Buffer.concat([one, Buffer.alloc(1)]), cw, 64)).toThrow(/whole/);
    const large = valuesToFixedBlob([pk.encrypt(pk.n - 1n)], cw);
    expect(() => native.crtDecrypt(dec, large, cw, 8)).toThrow(/plaintext width too small/);
    expect(() => native.crtDecrypt(dec, one, cw, 0)).toThrow(/widths/);
    expect(() => native.crtDecrypt(dec, valuesToFixedBlob([pk.n2], cw), cw, 64)).toThrow(/out of range/);
    expect(() => native.crtDecrypt(dec, Buffer.alloc(cw), cw, 64)).toThrow(/out of range/);
    // A handle of another kind is refused, never read as a decryptor.
    sk.encrypt(1n);
    const owner = (sk as unknown as { ownerEncryptor(): never }).ownerEncryptor();
    expect(() => native.crtDecrypt(owner, one, cw, 64)).toThrow(/CRT decryptor/);
    expect(() => native.crtDecrypt(encryptorOf(pk) as never, one, cw, 64)).toThrow(/CRT decryptor/);
    expect(() => native.ownerEncrypt(dec as never, Buffer.alloc(64), 64, Buffer.alloc(32), 32, cw)).toThrow(/owner encryptor/);
  });

  it('crtDecryptor refuses factors that do not multiply to N, an even factor and constants not below their prime', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(512);
    const { p, q } = factorsOf(sk);
    const w = 8 * Math.ceil(Math.max(pk.bits, 2 * p.toString(2).length, 2 * q.toString(2).length) / 64);
    const b = (v: bigint) => valuesToFixedBlob([v], w);
    expect(() => native.crtDecryptor(b(pk.n), b(p), b(q + 2n), b(1n), b(1n), b(1n))).toThrow(/unusable key/);
    expect(() => native.crtDecryptor(b(2n * q), b(2n), b(q), b(1n), b(1n), b(1n))).toThrow(/unusable key/);
    expect(() => native.crtDecryptor(b(pk.n), b(p), b(q), b(p), b(1n), b(1n))).toThrow(/unusable key/);
    expect(() => native.crtDecryptor(b(pk.n), b(p), b(q), b(1n), b(1n), Buffer.alloc(w + 8, 1))).toThrow(/no longer than the first/);
  });
});

describe("anyone's encryption in the C module (PublicKey.encrypt) against the BigInt reference", () => {
  it('gives the same ciphertext for the same h and exponent: random, 0, 1 and 2^256 - 1, plaintexts 0, 1, N-1 and random', async () => {
    const keys = [
      (await generateKeyPair(512)).publicKey,
      unequalPrimesKey().publicKey,
      new PublicKey(randomBits(255) * 2n + 1n + (1n << 256n)),
    ];
    for (const pk of keys) {
      const values = [0n, 1n, pk.n - 1n, ...Array.from({ length: 20 }, () => randomBelow(pk.n))];
      const exps = values.map((_, i) => (i === 0 ? 0n : i === 1 ? 1n : i === 2 ? (1n << 256n) - 1n : randomBits(256)));
      expect(encryptWithExponents(pk, values, exps), `${pk.bits}-bit N`).toEqual(values.map((m, i) => referenceEncrypt(pk, m, exps[i])));
    }
  });

  it('encryptMany and rerandomizeMany decrypt to their plaintexts and randomise', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(512);
    const values = [0n, 1n, -1n, pk.n - 1n, ...Array.from({ length: 50 }, () => randomBelow(pk.n))];
    const cs = pk.encryptMany(values);
    expect(sk.decryptMany(cs)).toEqual(values.map((v) => pk.encode(v)));
    const again = pk.rerandomizeMany(cs);
    expect(sk.decryptMany(again)).toEqual(values.map((v) => pk.encode(v)));
    expect(again.every((c, i) => c !== cs[i])).toBe(true);
    expect(new Set(pk.encryptMany(new Array<bigint>(30).fill(9n))).size).toBe(30);
    expect(pk.encryptMany([])).toEqual([]);
  });

  it('publicEncrypt and publicEncryptor check their arguments', async () => {
    const { publicKey: pk } = await generateKeyPair(512);
    const enc = encryptorOf(pk);
    const width = pk.bits / 8;
    const cw = pk.cipherBytes;
    expect(() => native.publicEncrypt(enc, valuesToFixedBlob([pk.n], width), width, Buffer.alloc(32), 32, cw)).toThrow(/not below N$/);
    const ok = valuesToFixedBlob([5n, 6n], width);
    expect(() => native.publicEncrypt(enc, ok, width, Buffer.alloc(32), 32, cw)).toThrow(/equal in number/);
    expect(() => native.publicEncrypt(enc, ok, width, Buffer.alloc(128), 64, cw)).toThrow(/widths/);
    expect(() => native.publicEncrypt(enc, ok, width, Buffer.alloc(64), 32, 8)).toThrow(/ciphertext width too small/);
    expect(() => native.publicEncrypt({} as never, ok, width, Buffer.alloc(64), 32, cw)).toThrow(/public encryptor/);
    const n = valuesToFixedBlob([pk.n], width);
    expect(() => native.publicEncryptor(n, Buffer.alloc(cw), 8, 256)).toThrow(/unusable key/);
    expect(() => native.publicEncryptor(n, valuesToFixedBlob([pk.n2], cw), 8, 256)).toThrow(/unusable key/);
    expect(() => native.publicEncryptor(valuesToFixedBlob([pk.n + 1n], width), valuesToFixedBlob([2n], cw), 8, 256)).toThrow(
      /unusable key/,
    );
    expect(() => native.publicEncryptor(n, Buffer.alloc(cw + 1, 1), 8, 256)).toThrow(/no longer than twice/);
    expect(() => native.publicEncryptor(n, valuesToFixedBlob([2n], cw), 13, 256)).toThrow(/window/);
  });
});

describe('the CRT decryption and public encryption entries at their boundary', () => {
  it('answer or throw a RangeError for 1000 random argument shapes each, and never crash the process', async () => {
    const { secretKey: sk, publicKey: pk } = await generateKeyPair(256);
    const dec = decryptorOf(sk);
    const enc = encryptorOf(pk);
    const int = (n: number) => Math.floor(Math.random() * n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    let answered = 0;
    for (let i = 0; i < 1000; i++) {
      const cw = int(2 * pk.cipherBytes);
      const pw = int(pk.cipherBytes);
      const count = int(4);
      try {
        // One case in 7 is a byte longer than count ciphertexts: then only a 1-byte width divides it.
        const input = bytes(count * cw + (i % 7 === 0 ? 1 : 0));
        const out = native.crtDecrypt(dec, input, cw, pw);
        expect(out.length, `crtDecrypt case ${i}: one value per ciphertext`).toBe((input.length / cw) * pw);
        answered++;
      } catch (error) {
        expect(error, `crtDecrypt case ${i}`).toBeInstanceOf(RangeError);
      }
      const ew = int(40);
      try {
        const out = native.publicEncrypt(enc, bytes(count * pw), pw, bytes(count * ew), ew, cw);
        expect(out.length).toBe(count * cw);
        answered++;
      } catch (error) {
        expect(error, `publicEncrypt case ${i}`).toBeInstanceOf(RangeError);
      }
    }
    expect(answered, 'some random cases are valid and answered').toBeGreaterThan(0);
  });
});
