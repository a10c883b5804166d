import { createHash, randomBytes } from 'node:crypto';
import type { BatchEncryptor } from '../../crypto/backend';
import { coarseEmbed, dot, embed, sumOf } from './embedding';
import { pack, type PackingParams } from './params';

// What the owner uploads for the fast protocol (docs/PROTOCOLS.md §3.3): each group's packed columns,
// encrypted in one go from the plaintexts of all its members, one ciphertext
// per coordinate per group (not per record: at 256x256 and G = 12 that is 12x
// fewer encryptions than shifting each record into its slot separately).
// Adding, replacing or deleting a member re-encrypts its group from the
// members' images (the owner keeps them sealed at C1), so a deleted record's
// data is gone from every ciphertext, not masked.

/** A group's packed columns under one key. */
export interface PackedColumns {
  /** Distance family: E(sum_j x_i^(j) 2^(w j)), i = 1..d. */
  distance: bigint[];
  /** Bound family: the packed block embedding e, i = 1..2B. */
  bound: bigint[];
  /** Coarse family (§3.5a): the packed coarse embedding E, i = 1..2B_c. */
  coarse: bigint[];
  /** E(sum_j (|x|^2 + 2 O S)^(j) 2^(w j)); only in C1's replica. */
  distanceConstant?: bigint;
  /** E(sum_j (|e|^2 + 2 O_e sum e - 2 sum_b T_b)^(j) 2^(w j)); only in C1's replica. */
  boundConstant?: bigint;
  /** E(sum_j (|E|^2 + 2 O_c sum E - 2 m sum_b T_b)^(j) 2^(w j)); only in C1's replica. */
  coarseConstant?: bigint;
}

/** The packed plaintexts of a group; `members[j]` holds the pixels of the record in slot j (null: free). */
export function groupPlaintexts(members: (ArrayLike<number> | null)[], p: PackingParams) {
  if (members.length > p.groupSize) throw new RangeError(`a group holds at most ${p.groupSize} records`);
  const d = p.width * p.height;
  const blocks = p.bound.dimension;
  const coarseBlocks = p.coarse.dimension;
  const m = BigInt(p.coarseFactor);
  const slots = members.map((pixels) => {
    if (pixels === null)
      return {
        x: new Array<bigint>(d).fill(0n),
        e: new Array<bigint>(blocks).fill(0n),
        ec: new Array<bigint>(coarseBlocks).fill(0n),
        cd: 0n,
        cb: 0n,
        cc: 0n,
      };
    if (pixels.length !== d) throw new RangeError(`a member has ${pixels.length} pixels, the collection ${d}`);
    const x = Array.from(pixels, (v) => BigInt(v));
    const e = embed(pixels, p);
    const ec = coarseEmbed(e, p);
    return {
      x,
      e: e.vector,
      ec: ec.vector,
      cd: dot(x, x) + 2n * p.distance.shareOffset * sumOf(x),
      cb: dot(e.vector, e.vector) + 2n * p.bound.shareOffset * sumOf(e.vector) - 2n * e.spreadSum,
      cc: dot(ec.vector, ec.vector) + 2n * p.coarse.shareOffset * sumOf(ec.vector) - 2n * m * e.spreadSum,
    };
  });
  const column = (values: bigint[]) => pack(values, p.slotBits);
  return {
    pixels: Array.from({ length: d }, (_, i) => column(slots.map((s) => s.x[i]))),
    embedding: Array.from({ length: blocks }, (_, i) => column(slots.map((s) => s.e[i]))),
    coarseEmbedding: Array.from({ length: coarseBlocks }, (_, i) => column(slots.map((s) => s.ec[i]))),
    distanceConstant: column(slots.map((s) => s.cd)),
    boundConstant: column(slots.map((s) => s.cb)),
    coarseConstant: column(slots.map((s) => s.cc)),
  };
}

/**
 * The owner's two replicas of a group's columns: C1's under C2's key
 * (underPk2, with the constants) and C2's under C1's key (underPk1), so that
 * neither server can decrypt what it stores.
 */
export async function encryptGroup(
  members: (ArrayLike<number> | null)[],
  p: PackingParams,
  underPk2: BatchEncryptor,
  underPk1: BatchEncryptor,
): Promise<{ forC1: PackedColumns; forC2: PackedColumns }> {
  const plain = groupPlaintexts(members, p);
  const values = [...plain.pixels, ...plain.embedding, ...plain.coarseEmbedding];
  const d = plain.pixels.length;
  const e = d + plain.embedding.length;
  const [c1Side, forC2] = await Promise.all([
    underPk2([...values, plain.distanceConstant, plain.boundConstant, plain.coarseConstant]),
    replicaColumns(plain, underPk1),
  ]);
  return {
    forC1: {
      distance: c1Side.slice(0, d),
      bound: c1Side.slice(d, e),
      coarse: c1Side.slice(e, values.length),
      distanceConstant: c1Side[values.length],
      boundConstant: c1Side[values.length + 1],
      coarseConstant: c1Side[values.length + 2],
    },
    forC2,
  };
}

/** C2's replica of a group's columns alone (under C1's key): what restoring C2's copy needs. */
export function encryptReplica(members: (ArrayLike<number> | null)[], p: PackingParams, underPk1: BatchEncryptor): Promise<PackedColumns> {
  return replicaColumns(groupPlaintexts(members, p), underPk1);
}

async function replicaColumns(plain: ReturnType<typeof groupPlaintexts>, underPk1: BatchEncryptor): Promise<PackedColumns> {
  const c = await underPk1([...plain.pixels, ...plain.embedding, ...plain.coarseEmbedding]);
  const d = plain.pixels.length;
  const e = d + plain.embedding.length;
  return { distance: c.slice(0, d), bound: c.slice(d, e), coarse: c.slice(e) };
}

/** A fresh version for a change to a group: random, the same at C1 and C2. */
export const newGroupVersion = (): Buffer => randomBytes(16);

/**
 * What both servers must agree on for a group: the version of its last change
 * and its members' lookup tags in slot order (free slots as '-'). C2 refuses a
 * session whose groups differ from its replica, rather than computing a wrong
 * answer; the version catches two servers holding different uploads of the
 * same members.
 */
export function groupDigest(version: Uint8Array, tags: (Uint8Array | null)[]): string {
  const h = createHash('sha256');
  h.update(`${Buffer.from(version).toString('hex')}|`);
  for (const t of tags) h.update(t ? `${Buffer.from(t).toString('hex')},` : '-,');
  return h.digest('hex').slice(0, 32);
}
