import type { BatchEncryptor } from '../../crypto/backend';
import type { RecordKey } from '../../crypto/symmetric';
import { imageStats } from '../../encoding/lower-bound';
import type { EncryptedStats } from './records';

/** The paper's record layout (docs/PROTOCOLS.md §2.1): one ciphertext per pixel, and the bound's statistics. */
export interface PaperLayout extends EncryptedStats {
  pixels: bigint[]; // E(x_1) .. E(x_d)
}

/** One record as the owner uploads it. */
export interface OwnerRecord {
  encryptedId: Buffer; // E_k(ID)
  lookupTag: Buffer; // HMAC_k(ID), for delete by ID
  /** Absent in a collection uploaded for the fast protocol only (d encryptions per record saved). */
  paper?: PaperLayout;
}

/** A record's ID, sealed and tagged, with the paper's layout when `encrypt` is given. */
export async function encryptRecord(
  recordKey: RecordKey,
  id: string,
  pixels: ArrayLike<number>,
  encrypt?: BatchEncryptor,
): Promise<OwnerRecord> {
  const identity = { encryptedId: recordKey.encryptId(id), lookupTag: recordKey.lookupTag(id) };
  if (!encrypt) return identity;
  const stats = imageStats(pixels);
  const d = pixels.length;
  const c = await encrypt([...Array.from(pixels, (x) => BigInt(x)), stats.sum, stats.spread]);
  return { ...identity, paper: { pixels: c.slice(0, d), sum: c[d], spread: c[d + 1] } };
}
