import { randomBelow } from '../../crypto/random';
import { invalidInput } from '../../errors';
import type { BatchEncryptor } from '../../crypto/backend';
import type * as wire from '@fnn/proto';
import { openSealedRecord } from '../../encoding/sealed-image';
import type { GrayImage } from '../../image/image';
import { residueToBytes } from '../../wire/codec';
import type { DoctorContext, Neighbour } from '../module';
import { coarseEmbed, dot, embed } from './embedding';
import { packingParams, type PackingParams } from './params';

// The doctor's side of the fast protocol (docs/PROTOCOLS.md §3.4). The query y is secret-shared:
// u uniform in [0, O) goes to C1, v = y + O - u to C2 (O a public offset
// 2^(bits(max) + 40), so both shares are non-negative and each is within 2^-40
// of independent of y). Two scalars go to C1 encrypted under C2's key.

export interface QueryShares {
  distance: bigint[];
  bound: bigint[];
  coarse: bigint[];
}

export interface FastQueryForC1 {
  shares: QueryShares;
  /** E2(|y|^2) */
  distanceConstant: bigint;
  /** E2(|e_y|^2 - 2 sum_b T_by - B + Z) */
  boundConstant: bigint;
  /** E2(|E_y|^2 - 2 m sum_b T_by - m B + Z_c) (§3.5a) */
  coarseConstant: bigint;
}

function share(values: bigint[], offset: bigint): { u: bigint[]; v: bigint[] } {
  const u = values.map(() => randomBelow(offset));
  return { u, v: values.map((y, i) => y + offset - u[i]) };
}

export async function shareQuery(
  pixels: ArrayLike<number>,
  p: PackingParams,
  underPk2: BatchEncryptor,
): Promise<{ forC1: FastQueryForC1; forC2: QueryShares }> {
  if (pixels.length !== p.width * p.height)
    throw invalidInput(`query has ${pixels.length} pixels, the collection's images ${p.width * p.height}`);
  const y = Array.from(pixels, (v) => BigInt(v));
  for (const v of y)
    if (v < 0n || v > BigInt(p.maxValue)) throw invalidInput(`query pixel values must be within the collection's range 0..${p.maxValue}`);
  const e = embed(pixels, p);
  const ec = coarseEmbed(e, p);
  const pixelShares = share(y, p.distance.shareOffset);
  const boundShares = share(e.vector, p.bound.shareOffset);
  const coarseShares = share(ec.vector, p.coarse.shareOffset);
  const blocks = BigInt(p.blockRows * p.blockCols);
  const m = BigInt(p.coarseFactor);
  const [distanceConstant, boundConstant, coarseConstant] = await underPk2([
    dot(y, y),
    dot(e.vector, e.vector) - 2n * e.spreadSum - blocks + p.boundShift,
    dot(ec.vector, ec.vector) - 2n * m * e.spreadSum - m * blocks + p.coarseShift,
  ]);
  return {
    forC1: {
      shares: { distance: pixelShares.u, bound: boundShares.u, coarse: coarseShares.u },
      distanceConstant,
      boundConstant,
      coarseConstant,
    },
    forC2: { distance: pixelShares.v, bound: boundShares.v, coarse: coarseShares.v },
  };
}

/** The collection's packing, from C1's public facts (the same derivation as the owner's and C1's). */
export async function collectionPacking(ctx: DoctorContext): Promise<PackingParams> {
  const status = await ctx.collection();
  if (!status.width) throw invalidInput('the collection is empty');
  return packingParams(status.keyBits, status.width, status.height, status.maxValue);
}

/**
 * The doctor's FastQuery for C1 (§3.4): the image split into two additive
 * shares, u for C1 (in the query) and v deposited at C2 (the query names its
 * ticket), plus two constants under pk2. Neither share alone says anything
 * about the image (statistical hiding, 40 bits).
 */
export async function fastQuery(ctx: DoctorContext, image: GrayImage): Promise<wire.FastQuery> {
  const p = await collectionPacking(ctx);
  if (image.width !== p.width || image.height !== p.height)
    throw invalidInput(`query is ${image.width}x${image.height}, the collection's images are ${p.width}x${p.height}`);
  const shares = await shareQuery(image.pixels, p, ctx.encrypt);
  const shareTicket = await ctx.putShare({
    distance: shares.forC2.distance.map(residueToBytes),
    bound: shares.forC2.bound.map(residueToBytes),
    coarse: shares.forC2.coarse.map(residueToBytes),
  });
  return {
    distanceShare: shares.forC1.shares.distance.map(residueToBytes),
    boundShare: shares.forC1.shares.bound.map(residueToBytes),
    distanceConstant: ctx.codec.cipher(shares.forC1.distanceConstant),
    boundConstant: ctx.codec.cipher(shares.forC1.boundConstant),
    coarseShare: shares.forC1.shares.coarse.map(residueToBytes),
    coarseConstant: ctx.codec.cipher(shares.forC1.coarseConstant),
    shareTicket,
  };
}

/** The neighbours of a fast answer (§3.7): sealed under k, opened here. */
export async function fastNeighbours(ctx: DoctorContext, answer: wire.FastAnswer): Promise<Neighbour[]> {
  return answer.neighbours.map((n) => ({ encryptedId: n.encryptedId, ...openSealedRecord(ctx.recordKey, n.sealedImage) }));
}
