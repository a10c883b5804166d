import { imageStats } from '../encoding/lower-bound';
import type { BatchEncryptor } from './owner';
import type { EncryptedQuery } from './records';

/** Algorithm 3 step 1: the doctor encrypts the query (negated; see EncryptedQuery). */
export async function encryptQuery(encrypt: BatchEncryptor, pixels: ArrayLike<number>): Promise<EncryptedQuery> {
  const stats = imageStats(pixels);
  const d = pixels.length;
  const c = await encrypt([...Array.from(pixels, (x) => -BigInt(x)), -stats.sum, -stats.spread, stats.spread]);
  return { negatedPixels: c.slice(0, d), negatedSum: c[d], negatedSpread: c[d + 1], spread: c[d + 2] };
}
