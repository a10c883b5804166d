import type * as wire from '@fnn/proto';
import { imageStats } from '../../encoding/lower-bound';
import type { GrayImage } from '../../image/image';
import { residueFromBytes } from '../../wire/codec';
import { openSealedRecord } from '../../encoding/sealed-image';
import type { DoctorContext, Neighbour } from '../module';
import { RetrievalBlinding, unblindRetrieved } from './retrieval';
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

/**
 * Step 7 at the doctor (§2.7): m + r from C2, part by part, minus r expanded
 * from C1's seeds, must be pixels. Each part is opened as it arrives: the
 * doctor holds the result images and one part, never the whole of m + r.
 */
export async function paperNeighbours(ctx: DoctorContext, answer: wire.PaperAnswer, query: GrayImage): Promise<Neighbour[]> {
  const d = query.pixels.length;
  const total = answer.neighbours.length * d;
  const blindings = answer.neighbours.map((r) => new RetrievalBlinding(r.blindingSeed, ctx.pk2.n));
  const images = answer.neighbours.map(() => new Uint16Array(d));
  let at = 0;
  for await (const part of ctx.retrieve(answer.retrievalTicket)) {
    if (at + part.length > total) throw new Error('C1 and C2 disagree on the number of results');
    for (let j = 0; j < part.length;) {
      const image = Math.floor(at / d);
      const pixel = at % d;
      const take = Math.min(d - pixel, part.length - j);
      const blinded = part.slice(j, j + take).map(residueFromBytes);
      images[image].set(unblindRetrieved(ctx.pk2.n, blinded, blindings[image].next(take), 65535), pixel);
      j += take;
      at += take;
    }
  }
  if (at !== total) throw new Error('C1 and C2 disagree on the number of results');
  return answer.neighbours.map((r, rank) => {
    const pixels = images[rank];
    // A C1 from before metadata sends no sealed record: the image is the retrieved one alone.
    if (r.sealedImage.length === 0) {
      const maxValue = pixels.some((v) => v > 255) ? 65535 : 255;
      return { encryptedId: r.encryptedId, image: { width: query.width, height: query.height, maxValue, pixels }, metadata: {} };
    }
    // The owner's sealed record carries the metadata; its pixels must be the
    // retrieved ones, so the metadata (a diagnosis) cannot sit beside another image.
    const sealed = openSealedRecord(ctx.recordKey, r.sealedImage);
    if (sealed.image.pixels.length !== d || sealed.image.pixels.some((v, i) => v !== pixels[i]))
      throw new Error(`result ${rank + 1}: the retrieved image differs from the record C1 named (C1 and C2 answers do not match)`);
    return {
      encryptedId: r.encryptedId,
      image: { width: query.width, height: query.height, maxValue: sealed.image.maxValue, pixels },
      metadata: sealed.metadata,
    };
  });
}
