import type { PublicKey, SecretKey } from './paillier';

// The bulk Paillier work of the protocols, as batch operations. The protocols
// only see these interfaces, so the same protocol code runs with the work done
// in-process (tests) or spread over worker threads (the daemons: a batch of d
// decryptions takes seconds and must not block the event loop).

/** C1's side: needs only the public key. */
/**
 * Paillier-encrypts many values: in-process in tests, on worker threads in the
 * CLI. The owner's may use the factorisation (faster); anyone may use the public key.
 */
export type BatchEncryptor = (values: bigint[]) => Promise<bigint[]>;

export interface C1Crypto {
  readonly publicKey: PublicKey;
  /** Algorithm 1 step 1: E(a - r), re-randomised so C2 cannot link it to E(a). */
  blind(values: bigint[], masks: bigint[]): Promise<bigint[]>;
  /** Algorithm 1 step 3 for a = b: E(a^2) = E(h) E(a)^(2r) E(-r^2), since (a - r)^2 = a^2 - 2ar + r^2. */
  unblindSquares(h: bigint[], values: bigint[], masks: bigint[]): Promise<bigint[]>;
  /** Algorithm 1 step 3: E(ab) = E(h) E(a)^(r_b) E(b)^(r_a) E(-r_a r_b). */
  unblindProducts(h: bigint[], a: bigint[], b: bigint[], masksA: bigint[], masksB: bigint[]): Promise<bigint[]>;
}

/** C2's side: holds the secret key. */
export interface C2Crypto {
  readonly publicKey: PublicKey;
  /** Algorithm 1 step 2 for a = b: E(D(c)^2 mod N), freshly randomised. */
  squareBlinded(values: bigint[]): Promise<bigint[]>;
  /** Algorithm 1 step 2: E(D(a) D(b) mod N), freshly randomised. */
  multiplyBlinded(a: bigint[], b: bigint[]): Promise<bigint[]>;
  /** Plain decryptions into [0, N). */
  decrypt(values: bigint[]): Promise<bigint[]>;
}

// ----- the work itself, as pure functions (also what the worker threads run) -----

export function blindBatch(pk: PublicKey, values: bigint[], masks: bigint[]): bigint[] {
  return pk.rerandomizeMany(values.map((c, i) => pk.addPlain(c, -masks[i])));
}

export function unblindSquaresBatch(pk: PublicKey, h: bigint[], values: bigint[], masks: bigint[]): bigint[] {
  return h.map((hi, i) => {
    const r = masks[i];
    const cross = pk.mulPlain(values[i], 2n * r);
    return pk.addPlain(pk.add(hi, cross), -(r * r));
  });
}

export function unblindProductsBatch(pk: PublicKey, h: bigint[], a: bigint[], b: bigint[], masksA: bigint[], masksB: bigint[]): bigint[] {
  return h.map((hi, i) => {
    const crossA = pk.mulPlain(a[i], masksB[i]);
    const crossB = pk.mulPlain(b[i], masksA[i]);
    return pk.addPlain(pk.add(pk.add(hi, crossA), crossB), -(masksA[i] * masksB[i]));
  });
}

export function squareBlindedBatch(sk: SecretKey, values: bigint[]): bigint[] {
  const n = sk.publicKey.n;
  return sk.encryptMany(sk.decryptMany(values).map((h) => (h * h) % n));
}

export function multiplyBlindedBatch(sk: SecretKey, a: bigint[], b: bigint[]): bigint[] {
  if (a.length !== b.length) throw new RangeError('multiplyBlinded: the two operand lists differ in length');
  const n = sk.publicKey.n;
  const db = sk.decryptMany(b);
  return sk.encryptMany(sk.decryptMany(a).map((x, i) => (x * db[i]) % n));
}

export function decryptBatch(sk: SecretKey, values: bigint[]): bigint[] {
  return sk.decryptMany(values);
}

// ----- in-process implementations -----

export function localC1Crypto(publicKey: PublicKey): C1Crypto {
  return {
    publicKey,
    blind: async (values, masks) => blindBatch(publicKey, values, masks),
    unblindSquares: async (h, values, masks) => unblindSquaresBatch(publicKey, h, values, masks),
    unblindProducts: async (h, a, b, ma, mb) => unblindProductsBatch(publicKey, h, a, b, ma, mb),
  };
}

export function localC2Crypto(secretKey: SecretKey): C2Crypto {
  return {
    publicKey: secretKey.publicKey,
    squareBlinded: async (values) => squareBlindedBatch(secretKey, values),
    multiplyBlinded: async (a, b) => multiplyBlindedBatch(secretKey, a, b),
    decrypt: async (values) => decryptBatch(secretKey, values),
  };
}
