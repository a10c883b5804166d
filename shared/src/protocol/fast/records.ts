import { createHash, randomBytes } from 'node:crypto';
import type { BatchEncryptor } from '../../crypto/backend';
import { dot, embed, sumOf } from './embedding';
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
  /** E(sum_j (|x|^2 + 2 O S)^(j) 2^(w j)); only in C1's replica. */
  distanceConstant?: bigint;
  /** E(sum_j (|e|^2 + 2 O_e sum e - 2 sum_b T_b)^(j) 2^(w j)); only in C1's replica. */
  boundConstant?: bigint;
}

/** The packed plaintexts of a group; `members[j]` holds the pixels of the record in slot j (null: free). */
export function groupPlaintexts(members: (ArrayLike<number> | null)[], p: PackingParams) {
  if (members.length > p.groupSize) throw new RangeError(`a group holds at most ${p.groupSize} records`);
  const d = p.width * p.height;
  const blocks = 2 * p.blockRows * p.blockCols;
  const slots = members.map((pixels) => {
    if (pixels === null) return { x: new Array<bigint>(d).fill(0n), e: new Array<bigint>(blocks).fill(0n), cd: 0n, cb: 0n };
    if (pixels.length !== d) throw new RangeError(`a member has ${pixels.length} pixels, the collection ${d}`);
    const x = Array.from(pixels, (v) => BigInt(v));
    const e = embed(pixels, p);
    return {
      x,
      e: e.vector,
      cd: dot(x, x) + 2n * p.distance.shareOffset * sumOf(x),
      cb: dot(e.vector, e.vector) + 2n * p.bound.shareOffset * sumOf(e.vector) - 2n * e.spreadSum,
    };
  });
  const column = (values: bigint[]) => pack(values, p.slotBits);
  return {
    pixels: Array.from({ length: d }, (_, i) => column(slots.map((s) => s.x[i]))),
    embedding: Array.from({ length: blocks }, (_, i) => column(slots.map((s) => s.e[i]))),
    distanceConstant: column(slots.map((s) => s.cd)),
    boundConstant: column(slots.map((s) => s.cb)),
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
  const values = [...plain.pixels, ...plain.embedding];
  const d = plain.pixels.length;
  const [c1Side, forC2] = await Promise.all([
    underPk2([...values, plain.distanceConstant, plain.boundConstant]),
    replicaColumns(plain, underPk1),
  ]);
  return {
    forC1: {
      distance: c1Side.slice(0, d),
      bound: c1Side.slice(d, values.length),
      distanceConstant: c1Side[values.length],
      boundConstant: c1Side[values.length + 1],
    },
    forC2,
  };
}

/** C2's replica of a group's columns alone (under C1's key): what restoring C2's copy needs. */
export function encryptReplica(members: (ArrayLike<number> | null)[], p: PackingParams, underPk1: BatchEncryptor): Promise<PackedColumns> {
  return replicaColumns(groupPlaintexts(members, p), underPk1);
}

async function replicaColumns(plain: ReturnType<typeof groupPlaintexts>, underPk1: BatchEncryptor): Promise<PackedColumns> {
  const c = await underPk1([...plain.pixels, ...plain.embedding]);
  return { distance: c.slice(0, plain.pixels.length), bound: c.slice(plain.pixels.length) };
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
