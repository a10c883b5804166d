import type * as wire from '@fnn/proto';
import { imageStats } from '../../encoding/lower-bound';
import type { GrayImage } from '../../image/image';
import { residueFromBytes } from '../../wire/codec';
import type { DoctorContext, Neighbour } from '../module';
import { unblindRetrieved } from './retrieval';
import type { BatchEncryptor } from '../../crypto/backend';
import type { EncryptedQuery } from './records';

/** Algorithm 3 step 1: the doctor encrypts the query (negated; see EncryptedQuery). */
export async function encryptQuery(encrypt: BatchEncryptor, pixels: ArrayLike<number>): Promise<EncryptedQuery> {
  const stats = imageStats(pixels);
  const d = pixels.length;
  const c = await encrypt([...Array.from(pixels, (x) => -BigInt(x)), -stats.sum, -stats.spread, stats.spread]);
  return { negatedPixels: c.slice(0, d), negatedSum: c[d], negatedSpread: c[d + 1], spread: c[d + 2] };
}

/** The doctor's PaperQuery for C1 (§2.5 step 1). */
export async function paperQuery(ctx: DoctorContext, image: GrayImage): Promise<wire.PaperQuery> {
  return ctx.codec.paperQueryToWire(await encryptQuery(ctx.encrypt, image.pixels));
}

/** Step 7 at the doctor (§2.7): m + r from C2, minus C1's r, must be pixels. */
export async function paperNeighbours(ctx: DoctorContext, answer: wire.PaperAnswer, query: GrayImage): Promise<Neighbour[]> {
  const retrieved = await ctx.retrieve(answer.retrievalTicket);
  if (retrieved.images.length !== answer.neighbours.length) throw new Error('C1 and C2 disagree on the number of results');
  return answer.neighbours.map((r, rank) => {
    const pixels = unblindRetrieved(
      ctx.pk2.n,
      retrieved.images[rank].values.map(residueFromBytes),
      r.blinding.map(residueFromBytes),
      65535,
    );
    const maxValue = pixels.some((v) => v > 255) ? 65535 : 255;
    if (pixels.length !== query.pixels.length) throw new Error('a result image has another size than the query');
    return { encryptedId: r.encryptedId, image: { width: query.width, height: query.height, maxValue, pixels: Uint16Array.from(pixels) } };
  });
}
