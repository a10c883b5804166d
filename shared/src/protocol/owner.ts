import type { RecordKey } from '../crypto/symmetric';
import { imageStats } from '../encoding/lower-bound';
import type { EncryptedStats } from './records';

/**
 * Paillier-encrypts many values: in-process in tests, on worker threads in the
 * CLI. The owner's may use the factorisation (faster); anyone may use the public key.
 */
export type BatchEncryptor = (values: bigint[]) => Promise<bigint[]>;

/** One record as the owner uploads it (the paper's record layout). */
export interface OwnerRecord extends EncryptedStats {
  encryptedId: Buffer; // E_k(ID)
  lookupTag: Buffer; // HMAC_k(ID), for delete by ID
  pixels: bigint[]; // E(x_1) .. E(x_d)
}

export async function encryptRecord(
  encrypt: BatchEncryptor,
  recordKey: RecordKey,
  id: string,
  pixels: ArrayLike<number>,
): Promise<OwnerRecord> {
  const stats = imageStats(pixels);
  const d = pixels.length;
  const c = await encrypt([...Array.from(pixels, (x) => BigInt(x)), stats.sum, stats.spread]);
  return {
    encryptedId: recordKey.encryptId(id),
    lookupTag: recordKey.lookupTag(id),
    pixels: c.slice(0, d),
    sum: c[d],
    spread: c[d + 1],
  };
}
