import { createHash, randomBytes } from 'node:crypto';
import type { PublicKey } from '../../crypto/paillier';
import type { BatchEncryptor } from '../owner';
import { dot, embed, sumOf } from './embedding';
import type { PackingParams } from './params';

// What the owner uploads for the fast protocol. A record that takes slot j of
// its group is encrypted already shifted into that slot, E(v 2^(w j)); a
// group's packed column is then the product of its members' ciphertexts, so
// adding a record fills a slot and deleting one recomputes the column from the
// remaining members: the deleted record's data is gone, not masked.

/** Per record and per replica: the shifted coordinates (and, at C1, the record constants). */
export interface SlotRecord {
  /** Random per upload and the same in both replicas, so their group digests catch different contents. */
  version: Uint8Array;
  /** Distance family: E(x_i 2^(w j)), i = 1..d. */
  pixels: bigint[];
  /** Bound family: E(e_i 2^(w j)), the block embedding. */
  embedding: bigint[];
  /** E((|x|^2 + 2 O S) 2^(w j)); only in C1's replica. */
  distanceConstant?: bigint;
  /** E((|e|^2 + 2 O_e sum e - 2 sum_b T_b) 2^(w j)); only in C1's replica. */
  boundConstant?: bigint;
}

/** The plaintexts of one record's slot contribution, before encryption. */
export function slotPlaintexts(pixels: ArrayLike<number>, p: PackingParams) {
  const x = Array.from(pixels, (v) => BigInt(v));
  const e = embed(pixels, p);
  return {
    pixels: x,
    embedding: e.vector,
    distanceConstant: dot(x, x) + 2n * p.distance.shareOffset * sumOf(x),
    boundConstant: dot(e.vector, e.vector) + 2n * p.bound.shareOffset * sumOf(e.vector) - 2n * e.spreadSum,
  };
}

/**
 * The owner's two replicas of one record in slot `slot`: C1's under C2's key
 * (encrypt2) and C2's under C1's key (encrypt1), so that neither server can
 * decrypt what it stores.
 */
export async function encryptSlotRecord(
  pixels: ArrayLike<number>,
  p: PackingParams,
  slot: number,
  encrypt2: BatchEncryptor,
  encrypt1: BatchEncryptor,
): Promise<{ forC1: SlotRecord; forC2: SlotRecord }> {
  if (!Number.isInteger(slot) || slot < 0 || slot >= p.groupSize) throw new RangeError('slot outside the group');
  const plain = slotPlaintexts(pixels, p);
  const shift = (v: bigint) => v << BigInt(p.slotBits * slot);
  const values = [...plain.pixels, ...plain.embedding].map(shift);
  const d = plain.pixels.length;
  const version = randomBytes(16);
  const [c1Side, c2Side] = await Promise.all([
    encrypt2([...values, shift(plain.distanceConstant), shift(plain.boundConstant)]),
    encrypt1(values),
  ]);
  return {
    forC1: {
      version,
      pixels: c1Side.slice(0, d),
      embedding: c1Side.slice(d, values.length),
      distanceConstant: c1Side[values.length],
      boundConstant: c1Side[values.length + 1],
    },
    forC2: { version, pixels: c2Side.slice(0, d), embedding: c2Side.slice(d) },
  };
}

/** A member of a group as both servers know it: its lookup tag and the version of its upload. */
export interface GroupMember {
  tag: Uint8Array;
  version: Uint8Array;
}

/**
 * What both servers must agree on for a group: its members' lookup tags and
 * upload versions in slot order (free slots as '-'). C2 refuses a session
 * whose groups differ from its replica, rather than computing a wrong answer;
 * the version catches two servers holding different uploads of the same ID.
 */
export function groupDigest(members: (GroupMember | null)[]): string {
  const h = createHash('sha256');
  for (const m of members)
    h.update(m ? `${Buffer.from(m.tag).toString('hex')}:${Buffer.from(m.version).toString('hex')},` : '-,');
  return h.digest('hex').slice(0, 32);
}

/** A group's packed column: the product of its members' shifted ciphertexts. */
export function packColumns(pk: PublicKey, members: bigint[][]): bigint[] {
  if (members.length === 0) throw new RangeError('a group needs a member');
  return members[0].map((_, i) => members.reduce((acc, m) => pk.add(acc, m[i]), 1n));
}
