import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { blobToCiphers, cipherToBytes, type FixedWidthValues } from '../crypto/codec';

// Test support for C1's and C2's SQLite stores (not exported from the library,
// which does no disk I/O): what a database keeps on disk, and the refusals the
// tests expect. Imported by the tests as '@fnn/shared/dist/testing/storage-support'.

/** A stored column (the bytes a snapshot hands to the multi-exponentiation) as ciphertexts, to decrypt or compare. */
export const ciphersOf = (column: FixedWidthValues): bigint[] => blobToCiphers(column.bytes, column.width);

/** Every byte SQLite keeps on disk for the database at `path`: the main file, the WAL and any other side file. */
export function databaseBytes(path: string): Buffer {
  const dir = dirname(path);
  const name = basename(path);
  const files = readdirSync(dir).filter((f) => f === name || f.startsWith(`${name}-`));
  if (!files.includes(name)) throw new Error(`the database file ${path} does not exist`);
  return Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
}

/**
 * 32-byte pieces of every ciphertext of a vector: a long blob spans SQLite
 * overflow pages, so one piece may be cut by a page header; the vector is on
 * disk if some piece is, and gone only if none is.
 */
export const cipherPieces = (cs: bigint[], cipherBytes: number): Buffer[] =>
  cs.map((c) => Buffer.from(cipherToBytes(c, cipherBytes)).subarray(8, 40));

/** Whether any of `probes` occurs in `disk`. */
export const onDisk = (disk: Buffer, probes: Buffer | Buffer[]): boolean =>
  (Array.isArray(probes) ? probes : [probes]).some((b) => disk.includes(b));

/** Runs fn, which must throw; returns what it threw. */
export function thrown(fn: () => unknown, what: string): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what} was accepted, but it must be refused`);
}

/** Awaits promise, which must reject; returns its reason. */
export async function rejected(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded, but it must fail`);
}
