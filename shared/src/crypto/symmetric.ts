import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

// The owner's symmetric key k, shared with authorised doctors. It encrypts the
// record identifiers (E_k(ID) in the paper) and, later, other record payloads.
// C1 and C2 only ever see its outputs.

const KEY_BYTES = 32;
const NONCE_BYTES = 12; // GCM's native nonce size; random nonces are safe for < 2^32 messages per key
const TAG_BYTES = 16;
const HKDF_SALT = Buffer.from('fnn/record-key/v1', 'utf8');

// Associated data binds each ciphertext to its use, so a sealed payload can
// never be passed off as a record identifier or the other way round.
const ID_AD = Buffer.from('fnn/record-id', 'utf8');
const sealAd = (associatedData: string) => Buffer.from('fnn/seal\0' + associatedData, 'utf8');

const ID_ERROR = 'record identifier could not be decrypted: wrong key or corrupted';
const SEAL_ERROR = 'sealed data could not be opened: wrong key, wrong associated data or corrupted';

export function generateSymmetricKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

export function keyToHex(k: Uint8Array): string {
  if (!(k instanceof Uint8Array) || k.length !== KEY_BYTES) throw new Error('symmetric key must be exactly 32 bytes');
  return Buffer.from(k).toString('hex');
}

export function keyFromHex(hex: string): Buffer {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex.trim()))
    throw new Error('symmetric key must be exactly 32 bytes, written as 64 hex characters');
  return Buffer.from(hex.trim(), 'hex');
}

/**
 * Subkeys of k: AES-256-GCM for confidentiality + integrity of identifiers and
 * payloads, HMAC-SHA256 for lookup tags. Deriving them with HKDF keeps the two
 * uses independent even though the owner manages a single secret.
 */
export class RecordKey {
  readonly #encKey: Buffer;
  readonly #macKey: Buffer;

  constructor(k: Uint8Array) {
    if (!(k instanceof Uint8Array) || k.length !== KEY_BYTES) throw new Error('symmetric key must be exactly 32 bytes');
    this.#encKey = Buffer.from(hkdfSync('sha256', k, HKDF_SALT, 'aes-256-gcm', KEY_BYTES));
    this.#macKey = Buffer.from(hkdfSync('sha256', k, HKDF_SALT, 'hmac-sha256 lookup-tag', KEY_BYTES));
  }

  /** E_k(ID): nonce (12) || ciphertext || tag (16). Randomised: equal IDs give unlinkable blobs. */
  encryptId(id: string): Buffer {
    if (typeof id !== 'string') throw new TypeError('record identifier must be a string');
    return this.gcmSeal(Buffer.from(id, 'utf8'), ID_AD);
  }

  decryptId(blob: Uint8Array): string {
    const plain = this.gcmOpen(blob, ID_AD);
    if (!plain) throw new Error(ID_ERROR);
    return plain.toString('utf8');
  }

  /**
   * HMAC_k(ID), 32 bytes. Deterministic on purpose: the owner can later ask C1
   * to delete "the record with this tag" without C1 learning the ID. It reveals
   * only equality of IDs, which C1 sees anyway (one record per ID).
   */
  lookupTag(id: string): Buffer {
    if (typeof id !== 'string') throw new TypeError('record identifier must be a string');
    return createHmac('sha256', this.#macKey).update('fnn/lookup-tag\0').update(id, 'utf8').digest();
  }

  /** Authenticated encryption of arbitrary bytes; associatedData must match on open. */
  seal(bytes: Uint8Array, associatedData = ''): Buffer {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('sealed data must be bytes');
    return this.gcmSeal(bytes, sealAd(associatedData));
  }

  open(blob: Uint8Array, associatedData = ''): Buffer {
    const plain = this.gcmOpen(blob, sealAd(associatedData));
    if (!plain) throw new Error(SEAL_ERROR);
    return plain;
  }

  private gcmSeal(plain: Uint8Array, ad: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#encKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]);
  }

  /** The plaintext, or null if the blob is malformed or fails authentication. */
  private gcmOpen(blob: Uint8Array, ad: Buffer): Buffer | null {
    if (!(blob instanceof Uint8Array) || blob.length < NONCE_BYTES + TAG_BYTES) return null;
    const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#encKey, b.subarray(0, NONCE_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(ad);
      decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
      return Buffer.concat([decipher.update(b.subarray(NONCE_BYTES, b.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return null;
    }
  }
}
