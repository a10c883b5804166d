import { inspect } from 'node:util';
// @ts-expect-error TS1479 under "module": "node16"; see the same import in paillier.ts
import { PrivateKey as LibPrivateKey, PublicKey as LibPublicKey } from 'paillier-bigint';
import { beforeAll, describe, expect, it } from 'vitest';
import { PublicKey, SecretKey, generateKeyPair } from './paillier';

let pk: PublicKey;
let sk: SecretKey;
let p: bigint;
let q: bigint;

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
  ({ p, q } = (({ p, q }) => ({ p: BigInt(p), q: BigInt(q) }))(sk.toJSON()));
}, 60_000);

/** paillier-bigint's own private key for the same factors, as an independent decryption oracle. */
function libraryKey(n: bigint, p: bigint, q: bigint): LibPrivateKey {
  const lambda = (p - 1n) * (q - 1n);
  let mu = lambda % n;
  // modular inverse by extended Euclid, kept local so the oracle shares no code with the module
  let [r0, r1, s0, s1] = [mu, n, 1n, 0n];
  while (r1 !== 0n) {
    const t = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - t * r1, s1, s0 - t * s1];
  }
  mu = ((s0 % n) + n) % n;
  return new LibPrivateKey(lambda, mu, new LibPublicKey(n, n + 1n), p, q);
}

describe('key generation', () => {
  it('produces a modulus of exactly the requested size from two distinct factors', () => {
    expect(pk.bits).toBe(512);
    expect(pk.n.toString(2)).toHaveLength(512);
    expect(p * q).toBe(pk.n);
    expect(p).not.toBe(q);
    expect(pk.n2).toBe(pk.n * pk.n);
    expect(pk.cipherBytes).toBe(128);
  });

  it('rejects key sizes below 256 bits, odd sizes and non-integers', async () => {
    await expect(generateKeyPair(128)).rejects.toThrow(/at least 256/);
    await expect(generateKeyPair(257)).rejects.toThrow(/even/);
    await expect(generateKeyPair(511.5)).rejects.toThrow(/integer/);
  });
});

describe('encryption and decryption', () => {
  it('round-trips 0, 1, N-1 and small values through fast encrypt and CRT decrypt', () => {
    for (const m of [0n, 1n, 2n, 255n, 65_535n, pk.n - 1n, pk.n / 2n]) expect(sk.decrypt(pk.encrypt(m))).toBe(m);
  });

  it('encodes negative values as N - |x| and decodes them with decryptSigned', () => {
    for (const m of [-1n, -2n, -65_535n, -(pk.n / 2n)]) {
      const c = pk.encrypt(m);
      expect(sk.decrypt(c)).toBe(pk.n + m);
      expect(sk.decryptSigned(c)).toBe(m);
    }
  });

  it('reduces plaintexts outside [0, N) modulo N', () => {
    expect(sk.decrypt(pk.encrypt(pk.n + 5n))).toBe(5n);
    expect(sk.decrypt(pk.encrypt(-pk.n - 5n))).toBe(pk.n - 5n);
  });

  it('gives different ciphertexts for two fast encryptions of the same value', () => {
    const a = pk.encrypt(42n);
    const b = pk.encrypt(42n);
    expect(a).not.toBe(b);
    expect(sk.decrypt(a)).toBe(42n);
    expect(sk.decrypt(b)).toBe(42n);
  });

  it('decrypts textbook encryptions (encryptStandard) correctly and randomises them', () => {
    for (const m of [0n, 1n, -7n, pk.n - 1n]) expect(sk.decrypt(pk.encryptStandard(m))).toBe(pk.encode(m));
    expect(pk.encryptStandard(3n)).not.toBe(pk.encryptStandard(3n));
  });

  it("decrypts the owner's CRT encryptions (SecretKey.encrypt) correctly and randomises them", () => {
    for (const m of [0n, 1n, -7n, 123_456_789n, pk.n - 1n]) expect(sk.decrypt(sk.encrypt(m))).toBe(pk.encode(m));
    expect(sk.encrypt(3n)).not.toBe(sk.encrypt(3n));
  });

  it('produces valid ciphertexts on all three encryption paths', () => {
    for (const c of [pk.encrypt(9n), pk.encryptStandard(9n), sk.encrypt(9n)]) expect(pk.isValidCiphertext(c)).toBe(true);
  });

  it("agrees with paillier-bigint's own decryption on every encryption path", () => {
    const lib = libraryKey(pk.n, p, q);
    for (const c of [pk.encrypt(77n), pk.encryptStandard(-3n), sk.encrypt(pk.n - 2n), lib.publicKey.encrypt(99n)])
      expect(sk.decrypt(c)).toBe(lib.decrypt(c));
  });

  it('refuses to decrypt values outside (0, N^2)', () => {
    expect(() => sk.decrypt(0n)).toThrow(/out of range/);
    expect(() => sk.decrypt(pk.n2)).toThrow(/out of range/);
  });

  it('refuses to decrypt a value that shares a factor with N (no ciphertext does), alone or in a batch', () => {
    for (const c of [p, q, pk.n, 3n * q]) expect(() => sk.decrypt(c)).toThrow(RangeError);
    expect(() => sk.decryptMany([pk.encrypt(1n), p])).toThrow(/shares a factor with N/);
  });

  it('decryptMany and encryptMany agree with decrypt and encrypt one at a time, in order', () => {
    const values = [0n, 1n, 5n, pk.n - 1n, -9n];
    const cs = pk.encryptMany(values);
    expect(sk.decryptMany(cs)).toEqual(cs.map((c) => sk.decrypt(c)));
    expect(sk.decryptMany(cs)).toEqual(values.map((v) => pk.encode(v)));
  });
});

describe('homomorphic operations', () => {
  it('add: E(a) E(b) decrypts to a + b, including negative operands', () => {
    expect(sk.decrypt(pk.add(pk.encrypt(20n), pk.encrypt(22n)))).toBe(42n);
    expect(sk.decryptSigned(pk.add(pk.encrypt(5n), pk.encrypt(-12n)))).toBe(-7n);
    expect(sk.decrypt(pk.add(pk.encrypt(pk.n - 1n), pk.encrypt(1n)))).toBe(0n);
  });

  it('addPlain: adds a positive or negative plaintext without changing randomness when m = 0', () => {
    const c = pk.encrypt(100n);
    expect(sk.decrypt(pk.addPlain(c, 23n))).toBe(123n);
    expect(sk.decryptSigned(pk.addPlain(c, -150n))).toBe(-50n);
    expect(pk.addPlain(c, 0n)).toBe(c);
    expect(pk.addPlain(c, pk.n)).toBe(c);
  });

  it('addPlain equals multiplication by the trivial encryption 1 + mN', () => {
    const c = pk.encrypt(5n);
    const m = 987_654_321n;
    expect(pk.addPlain(c, m)).toBe((c * (1n + m * pk.n)) % pk.n2);
  });

  it('mulPlain: E(a)^k decrypts to k a for positive, negative, zero and 128-bit k', () => {
    const c = pk.encrypt(7n);
    expect(sk.decrypt(pk.mulPlain(c, 6n))).toBe(42n);
    expect(sk.decryptSigned(pk.mulPlain(c, -3n))).toBe(-21n);
    expect(sk.decrypt(pk.mulPlain(c, 0n))).toBe(0n);
    expect(sk.decrypt(pk.mulPlain(c, 1n))).toBe(7n);
    const k = (1n << 127n) + 12_345n;
    expect(sk.decrypt(pk.mulPlain(c, k))).toBe(pk.encode(7n * k));
    expect(sk.decryptSigned(pk.mulPlain(pk.encrypt(-4n), -5n))).toBe(20n);
  });

  it('negate: E(a)^-1 decrypts to -a and cancels E(a)', () => {
    for (const m of [0n, 1n, 42n, -42n, pk.n - 1n]) {
      const c = pk.encrypt(m);
      const neg = pk.negate(c);
      expect(sk.decrypt(neg)).toBe(pk.encode(-m));
      expect((neg * c) % pk.n2).toBe(1n);
    }
  });

  it('negate refuses a value that shares a factor with N, without printing it', () => {
    let message = '';
    try {
      pk.negate(p * 3n);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/not invertible/);
    expect(message).not.toContain(p.toString());
  });

  it('rerandomize: changes the ciphertext and keeps the plaintext', () => {
    const c = pk.encrypt(-9n);
    const r = pk.rerandomize(c);
    expect(r).not.toBe(c);
    expect(sk.decryptSigned(r)).toBe(-9n);
  });

  it("matches the paper's forms: E(a)^(N-1) and E(a) ^ (N - k) decrypt like negate and mulPlain(-k)", () => {
    const c = pk.encrypt(11n);
    expect(sk.decrypt(pk.mulPlain(c, pk.n - 1n))).toBe(sk.decrypt(pk.negate(c)));
    expect(sk.decrypt(pk.mulPlain(c, pk.n - 4n))).toBe(sk.decrypt(pk.mulPlain(c, -4n)));
  });
});

describe('plaintext encoding', () => {
  it('encode maps integers into [0, N)', () => {
    expect(pk.encode(0n)).toBe(0n);
    expect(pk.encode(-1n)).toBe(pk.n - 1n);
    expect(pk.encode(pk.n)).toBe(0n);
    expect(pk.encode(3n * pk.n + 2n)).toBe(2n);
  });

  it('decodeSigned treats values up to floor(N/2) as positive and the rest as negative', () => {
    const half = pk.n / 2n; // N is odd
    expect(pk.decodeSigned(half)).toBe(half);
    expect(pk.decodeSigned(half + 1n)).toBe(half + 1n - pk.n);
    expect(pk.decodeSigned(pk.n - 1n)).toBe(-1n);
    expect(pk.decodeSigned(0n)).toBe(0n);
    expect(() => pk.decodeSigned(pk.n)).toThrow(RangeError);
    expect(() => pk.decodeSigned(-1n)).toThrow(RangeError);
  });
});

describe('ciphertext validation', () => {
  it('accepts genuine ciphertexts', () => {
    expect(pk.isValidCiphertext(pk.encrypt(1n))).toBe(true);
    expect(pk.isValidCiphertext(1n)).toBe(true);
  });

  it('rejects 0, N^2, N^2 + 1, negatives and multiples of a prime factor', () => {
    expect(pk.isValidCiphertext(0n)).toBe(false);
    expect(pk.isValidCiphertext(-1n)).toBe(false);
    expect(pk.isValidCiphertext(pk.n2)).toBe(false);
    expect(pk.isValidCiphertext(pk.n2 + 1n)).toBe(false);
    expect(pk.isValidCiphertext(p)).toBe(false);
    expect(pk.isValidCiphertext(p * 12_345n)).toBe(false);
    expect(pk.isValidCiphertext(q * q)).toBe(false);
    expect(pk.isValidCiphertext(pk.n)).toBe(false);
  });

  it('validates many at once exactly as one by one: one bad ciphertext anywhere in a batch fails it', () => {
    const good = Array.from({ length: 20 }, (_, i) => pk.encrypt(BigInt(i)));
    expect(pk.areValidCiphertexts(good), 'genuine ciphertexts').toBe(true);
    expect(pk.areValidCiphertexts([]), 'an empty batch').toBe(true);
    for (const bad of [0n, -1n, pk.n2, p, p * 12_345n, q * q, pk.n, q * pk.encrypt(3n)]) {
      for (const at of [0, 7, 20]) {
        const batch = [...good.slice(0, at), bad, ...good.slice(at)];
        expect(pk.areValidCiphertexts(batch), `${bad === pk.n2 ? 'N^2' : 'a bad value'} at position ${at}`).toBe(false);
      }
    }
    // Two ciphertexts that are each fine but multiply to a multiple of N mod N would be
    // impossible: a product of units mod N is a unit. Check a product close to it stays valid.
    expect(pk.areValidCiphertexts([pk.n + 1n, pk.n - 1n, pk.n2 - 1n])).toBe(true);
  });
});

describe('fingerprint', () => {
  it('is 16 hex characters, stable for the same N and different for another key', async () => {
    const fp = pk.fingerprint();
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    expect(new PublicKey(pk.n).fingerprint()).toBe(fp);
    const other = await generateKeyPair(256);
    expect(other.publicKey.fingerprint()).not.toBe(fp);
  }, 30_000);
});

describe('JSON', () => {
  it('round-trips the public key through JSON text', () => {
    const back = PublicKey.fromJSON(JSON.parse(JSON.stringify(pk)));
    expect(back.n).toBe(pk.n);
    expect(back.fingerprint()).toBe(pk.fingerprint());
  });

  it('accepts a decimal modulus as well as hex', () => {
    expect(PublicKey.fromJSON({ n: pk.n.toString(10) }).n).toBe(pk.n);
  });

  it('round-trips the secret key: the restored key decrypts and encrypts', () => {
    const back = SecretKey.fromJSON(JSON.parse(JSON.stringify(sk)), pk);
    const c = pk.encrypt(-31n);
    expect(back.decryptSigned(c)).toBe(-31n);
    expect(sk.decryptSigned(back.encrypt(-31n))).toBe(-31n);
    expect(back.toJSON()).toEqual(sk.toJSON());
  });

  it('rejects malformed public-key JSON with a clear message', () => {
    expect(() => PublicKey.fromJSON(null)).toThrow(/expected a JSON object/);
    expect(() => PublicKey.fromJSON('0x1234')).toThrow(/expected a JSON object/);
    expect(() => PublicKey.fromJSON({})).toThrow(/field "n"/);
    expect(() => PublicKey.fromJSON({ n: 12345 })).toThrow(/field "n"/);
    expect(() => PublicKey.fromJSON({ n: 'not a number' })).toThrow(/field "n"/);
    expect(() => PublicKey.fromJSON({ n: ' 123' })).toThrow(/field "n"/);
    expect(() => PublicKey.fromJSON({ n: '0x' })).toThrow(/field "n"/);
    expect(() => PublicKey.fromJSON({ n: (pk.n * 2n).toString() })).toThrow(/odd/);
    expect(() => PublicKey.fromJSON({ n: '0xffff' })).toThrow(/at least 256 bits/);
  });

  it('rejects a secret key whose factors do not multiply to N, without echoing them', () => {
    const wrong = { p: (p + 2n).toString(), q: q.toString() };
    let message = '';
    try {
      SecretKey.fromJSON(wrong, pk);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/p\*q != n/);
    expect(message).not.toContain(q.toString());
    expect(message).not.toContain(q.toString(16));
    expect(() => SecretKey.fromJSON({ p: pk.n.toString(), q: '1' }, pk)).toThrow(/p\*q != n/);
    expect(() => SecretKey.fromJSON({ p: p.toString() }, pk)).toThrow(/field "q"/);
    expect(() => SecretKey.fromJSON(undefined, pk)).toThrow(/expected a JSON object/);
  });

  it('keeps the factors out of util.inspect / console.log output', () => {
    const shown = inspect(sk, { depth: 5 });
    expect(shown).not.toContain(p.toString());
    expect(shown).not.toContain(q.toString());
  });
});

describe('2048-bit key', () => {
  it("round-trips fast encryptions through CRT decryption, matching paillier-bigint's decrypt", async () => {
    const { publicKey, secretKey } = await generateKeyPair(2048);
    expect(publicKey.bits).toBe(2048);
    expect(publicKey.cipherBytes).toBe(512);
    const { p, q } = secretKey.toJSON();
    const lib = libraryKey(publicKey.n, BigInt(p), BigInt(q));
    for (const m of [0n, 1n, -1n, 4_294_967_295n, publicKey.n - 1n]) {
      const c = publicKey.encrypt(m);
      expect(secretKey.decrypt(c)).toBe(publicKey.encode(m));
      expect(secretKey.decrypt(c)).toBe(lib.decrypt(c));
    }
    const owner = secretKey.encrypt(-12_345n);
    expect(secretKey.decryptSigned(owner)).toBe(-12_345n);
    expect(lib.decrypt(owner)).toBe(publicKey.encode(-12_345n));
  }, 300_000);
});
