import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type * as wire from '@fnn/proto';

// Checksums of the blobs a store keeps (ciphertexts, sealed images, packed
// columns): SQLite's own integrity check covers its pages, not what is in a
// blob, so a flipped byte inside a ciphertext passes it and turns into a wrong
// decryption three steps later. Each checked blob column `c` has a column
// `c_sha` beside it: SHA-256 over (table, row key, column, blob), written with
// the blob and compared whenever the blob is read. Keyless on purpose
// (docs/SECURITY.md): it is there to catch damage, and a check that needs no
// secret can be run by anyone holding the file (`fnn check`).

/** A table whose blobs carry checksums. */
export interface ChecksummedTable {
  table: string;
  /** The column naming the row in its checksums, fixed for the row's life (a record's lookup tag, a group's number). */
  key: string;
  /** The checked blob columns; a NULL blob has a NULL checksum. */
  blobs: readonly string[];
}

/** A row whose blobs do not match their checksums, as a store's verify() lists it. */
export interface Damage {
  /** A record (C1's `records`) or a group's packed columns (C1's `packed_groups`, C2's `replica_groups`). */
  kind: 'record' | 'group';
  group: number;
  /** A record's slot in its group, its position in upload order (1-based) and its lookup tag (never the ID). */
  slot?: number;
  position?: number;
  lookupTag?: Buffer;
  /** The blob columns that do not match. */
  columns: string[];
}

export const checksumColumn = (blob: string): string => `${blob}_sha`;

/** SHA-256 over (table, row key, column, blob), each prefixed by its length: a blob moved to another row or column does not match there. */
export function blobChecksum(table: string, key: Buffer | number | bigint, column: string, blob: Buffer): Buffer {
  const hash = createHash('sha256');
  for (const part of [Buffer.from(table), typeof key === 'object' ? key : Buffer.from(String(key)), Buffer.from(column), blob]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    hash.update(length).update(part);
  }
  return hash.digest();
}

/** The checksums of one row's blobs, in the order of `spec.blobs` (NULL for a NULL blob): what a write stores beside them. */
export function checksumsOf(spec: ChecksummedTable, key: Buffer | number, blobs: readonly (Buffer | null)[]): (Buffer | null)[] {
  return spec.blobs.map((column, i) => {
    const blob = blobs[i];
    return blob === null ? null : blobChecksum(spec.table, key, column, blob);
  });
}

/** Whether a blob as read matches the checksum read with it (both NULL: a blob the row does not have). */
export function matches(spec: ChecksummedTable, key: Buffer | number, column: string, blob: Buffer | null, sha: Buffer | null): boolean {
  if (blob === null || sha === null) return blob === sha;
  return blobChecksum(spec.table, key, column, blob).equals(sha);
}

/**
 * Every row of the table in `orderBy` order, with the blob columns that do
 * not match their checksums (rows that all match are skipped). One row in
 * memory at a time; `fields` are further columns the caller names rows by.
 */
export function* damagedRows(
  db: Database.Database,
  spec: ChecksummedTable,
  orderBy: string,
  fields: readonly string[] = [],
): Generator<{ index: number; row: Record<string, unknown>; columns: string[] }> {
  const selected = [spec.key, ...fields, ...spec.blobs.flatMap((c) => [c, checksumColumn(c)])];
  const rows = db.prepare(`SELECT ${selected.join(', ')} FROM ${spec.table} ORDER BY ${orderBy}`).iterate() as Iterable<
    Record<string, unknown>
  >;
  let index = 0;
  for (const row of rows) {
    const key = row[spec.key] as Buffer | number;
    const columns = spec.blobs.filter((c) => !matches(spec, key, c, row[c] as Buffer | null, row[checksumColumn(c)] as Buffer | null));
    if (columns.length > 0) yield { index, row, columns };
    index++;
  }
}

/** Damage as ListGroups reports it to the owner (`fnn check`): positions, groups and slots, never a lookup tag. */
export function damagedToWire(damage: Damage[]): wire.DamagedBlob[] {
  return damage.map((d) => ({
    record: d.kind === 'record',
    group: d.group,
    slot: d.slot ?? 0,
    position: d.position ?? 0,
    columns: d.columns,
  }));
}
