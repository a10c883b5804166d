// The C fast paths of shared/native/ (Montgomery arithmetic on 64-bit limbs),
// built by node-gyp when `npm ci` installs this package (its install script).
// Numbers cross as big-endian byte buffers of one fixed width.

/** An owner's encryptor: fixed-base tables mod p^2 and q^2, held by the addon. */
export type OwnerEncryptorHandle = { readonly __brand: 'OwnerEncryptor' };
/** A key holder's CRT decryptor: the factors and constants of SecretKey.decrypt, held by the addon. */
export type CrtDecryptorHandle = { readonly __brand: 'CrtDecryptor' };
/** Anyone's encryptor: the fixed-base table of h mod N^2, held by the addon. */
export type PublicEncryptorHandle = { readonly __brand: 'PublicEncryptor' };

interface Addon {
  ownerEncryptor(
    n: Buffer,
    p2: Buffer,
    q2: Buffer,
    hModP2: Buffer,
    hModQ2: Buffer,
    q2InvP2: Buffer,
    windowBits: number,
    exponentBits: number,
  ): OwnerEncryptorHandle;
  ownerEncrypt(
    encryptor: OwnerEncryptorHandle,
    plaintexts: Buffer,
    plaintextBytes: number,
    exponents: Buffer,
    exponentBytes: number,
    cipherBytes: number,
  ): Buffer;
  crtDecryptor(n: Buffer, p: Buffer, q: Buffer, hp: Buffer, hq: Buffer, qInvP: Buffer): CrtDecryptorHandle;
  crtDecrypt(decryptor: CrtDecryptorHandle, ciphertexts: Buffer, cipherBytes: number, plainBytes: number): Buffer;
  publicEncryptor(n: Buffer, h: Buffer, windowBits: number, exponentBits: number): PublicEncryptorHandle;
  publicEncrypt(
    encryptor: PublicEncryptorHandle,
    plaintexts: Buffer,
    plaintextBytes: number,
    exponents: Buffer,
    exponentBytes: number,
    cipherBytes: number,
  ): Buffer;
  multiExp(modulus: Buffer, bases: Buffer, baseBytes: number, exponents: Buffer, exponentBytes: number, windowBits: number): Buffer;
}

function load(): Addon {
  try {
    // Two levels up from src/crypto and from dist/crypto alike: shared/build/.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon loads only through require
    return require('../../build/Release/fast_paillier.node') as Addon;
  } catch (err) {
    throw new Error(
      `the native Paillier module is not built (${(err as Error).message.split('\n')[0]}); run \`npm ci\` or \`make build\` at the repository root`,
    );
  }
}

export const native: Addon = load();
