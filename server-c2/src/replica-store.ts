import {
  checkGroupVersion,
  checksumsOf,
  checkSlot,
  CollectionStore,
  damagedRows,
  type ChecksummedTable,
  type CollectionSchema,
  type Damage,
  type ImageShape,
} from '@fnn/server-common';
import {
  checkColumnCounts,
  invalidInput,
  protocolState,
  type Family,
  type PackedColumns,
  type PublicKey,
  type ReplicaSource,
} from '@fnn/shared';

// C2's replica of the packed records, for the fast protocol: each group's
// packed columns under C1's key (C2 cannot decrypt them), its members' lookup
// tags and the version of its last change. The schema is here, in one place
// (the facts table is CollectionDatabase's); WAL mode, one transaction per
// change, deleted rows overwritten.
// 3: the coarse family of the bound cascade (PROTOCOLS.md §3.5a), every group's columns with their
// checksums beside them (server-common/src/checksums.ts); older files are refused (only the owner can
// make the coarse columns).
export const REPLICA_SCHEMA_VERSION = 3;

/** A group's packed columns, each with its checksum column `<blob>_sha`, named by the group's number. */
export const REPLICA_BLOBS: ChecksummedTable = { table: 'replica_groups', key: 'grp', blobs: ['pixels', 'embedding', 'coarse'] };

const TABLES = `
CREATE TABLE IF NOT EXISTS replica_groups (
  grp       INTEGER PRIMARY KEY,
  version   BLOB NOT NULL,          -- the owner's random version of the group's last change, the same at C1
  pixels    BLOB NOT NULL,          -- E1(sum_j x_i^(j) 2^(w j))
  embedding BLOB NOT NULL,
  coarse    BLOB NOT NULL,          -- the coarse family (§3.5a)
  -- SHA-256 of (table, group, column, blob) per blob (REPLICA_BLOBS).
  pixels_sha    BLOB,
  embedding_sha BLOB,
  coarse_sha    BLOB
) STRICT;

CREATE TABLE IF NOT EXISTS replica_members (
  grp        INTEGER NOT NULL,
  slot       INTEGER NOT NULL,
  lookup_tag BLOB NOT NULL,         -- HMAC_k(ID), the same tag C1 holds
  PRIMARY KEY (grp, slot)
) STRICT;
`;

export const REPLICA_SCHEMA: CollectionSchema = {
  version: REPLICA_SCHEMA_VERSION,
  tables: TABLES,
  groups: { versions: 'replica_groups', members: 'replica_members' },
  names: {
    daemon: 'C2',
    file: 'replica',
    key: 'key of C1',
    images: 'the replica',
    remedy: "start C2 on a new replica file and upload the collection's replica again",
  },
};

export type ReplicaShape = ImageShape;

/** A group as the owner set it: members after the change, its version and columns under C1's key. */
export interface ReplicaGroupChange {
  group: number;
  version: Buffer;
  members: { slot: number; lookupTag: Buffer }[];
  /** Absent when the group is left empty. */
  columns?: PackedColumns;
}

export class ReplicaStore extends CollectionStore {
  /** `key` is C1's public key, under which the replica is encrypted. */
  constructor(path: string, key: PublicKey) {
    super(path, key, REPLICA_SCHEMA);
  }

  /**
   * Set one group as the owner re-encrypted it: its members (none: the group
   * is dropped), version and columns. C1 is the authority on what exists and
   * arbitrates concurrent changes; the group digests catch any disagreement.
   */
  putGroup(shape: ReplicaShape, change: ReplicaGroupChange): void {
    this.collection.transaction(() => {
      this.collection.checkShape(shape, true);
      const p = this.params()!;
      checkGroupVersion(change.version);
      const slots = new Set<number>();
      for (const m of change.members) {
        checkSlot(m.slot, p.groupSize);
        if (slots.has(m.slot)) throw invalidInput(`slot ${m.slot} named twice`);
        slots.add(m.slot);
      }
      this.db.prepare('DELETE FROM replica_members WHERE grp = ?').run(change.group);
      this.db.prepare('DELETE FROM replica_groups WHERE grp = ?').run(change.group);
      if (change.members.length === 0) {
        if (change.columns) throw invalidInput(`group ${change.group} is left empty but columns were sent`);
      } else {
        const c = change.columns;
        if (!c) throw invalidInput(`group ${change.group} has members but no packed columns`);
        checkColumnCounts(p, c, `group ${change.group}`);
        const blobs = [this.toBlob(c.distance), this.toBlob(c.bound), this.toBlob(c.coarse)]; // REPLICA_BLOBS' order
        this.db
          .prepare(
            'INSERT INTO replica_groups (grp, version, pixels, embedding, coarse, pixels_sha, embedding_sha, coarse_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
          )
          .run(change.group, change.version, ...blobs, ...checksumsOf(REPLICA_BLOBS, change.group, blobs));
        const insert = this.db.prepare('INSERT INTO replica_members (grp, slot, lookup_tag) VALUES (?, ?, ?)');
        for (const m of change.members) insert.run(change.group, m.slot, m.lookupTag);
      }
      if (this.count === 0) this.collection.clearFacts();
    });
    this.collection.checkpoint(); // replaced ciphertexts leave the WAL
  }

  /** The replica as the fast protocol's C2 side reads it. */
  source(): ReplicaSource {
    const params = this.params();
    if (!params) throw invalidInput('the replica is empty');
    const packed = this.db.prepare(
      'SELECT pixels, pixels_sha, embedding, embedding_sha, coarse, coarse_sha FROM replica_groups WHERE grp = ?',
    );
    return {
      params,
      digest: (group) => this.collection.groupDigest(group, params.groupSize),
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family, expectedDigest: string) => {
        const now = this.collection.groupDigest(group, params.groupSize);
        if (now === undefined || now !== expectedDigest) throw protocolState('a group changed during the query; run the query again');
        const row = packed.get(group) as Record<'pixels' | 'embedding' | 'coarse', Buffer> &
          Record<'pixels_sha' | 'embedding_sha' | 'coarse_sha', Buffer | null>;
        // The column hashed whole on every read, as at C1 (cost: server-c1/src/storage.ts, packedSnapshot).
        const column = ({ distance: 'pixels', bound: 'embedding', coarse: 'coarse' } as const)[family];
        // As stored: the multi-exponentiation reads the bytes.
        const bytes = this.collection.verified(REPLICA_BLOBS, group, column, row[column], row[`${column}_sha`], () => `group ${group}`);
        return { bytes, width: this.key.cipherBytes };
      },
    };
  }

  /** Every group whose columns do not match their checksums, by number: what `fnn check` reports. Reads the whole file, a row at a time. */
  verify(): Damage[] {
    return [...damagedRows(this.db, REPLICA_BLOBS, 'grp')].map(({ row, columns }) => ({
      kind: 'group',
      group: row.grp as number,
      columns,
    }));
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return this.collection.toBlob(ciphers);
  }
}
