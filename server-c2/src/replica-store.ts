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
import { randomBytes } from 'node:crypto';
import {
  checkColumnCounts,
  groupDigest,
  invalidInput,
  protocolState,
  type Family,
  type PackedColumns,
  type PublicKey,
  type ReplicaSource,
} from '@fnn/shared';

// C2's replica of the packed records, for the fast protocol: each group's
// packed columns under C1's key (C2 cannot decrypt them), its members' lookup
// tags and the version of its last change, and beside it at most one pending
// change the owner sent but C1 may not hold yet (docs/ARCHITECTURE.md,
// "Replica changes"). The schema is here, in one place (the facts table is
// CollectionDatabase's); WAL mode, one transaction per change, deleted rows overwritten.
// 3: the coarse family of the bound cascade (PROTOCOLS.md §3.5a), every group's columns with their
// checksums beside them (server-common/src/checksums.ts); older files are refused (only the owner can
// make the coarse columns). 4: pending changes (replica_pending, replica_pending_members).
export const REPLICA_SCHEMA_VERSION = 4;

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

-- A change taken (Replica.PutGroup) and not served until C1 is seen to hold it.
CREATE TABLE IF NOT EXISTS replica_pending (
  grp       INTEGER PRIMARY KEY,
  version   BLOB NOT NULL,
  pixels    BLOB,                   -- NULL: the change empties the group
  embedding BLOB,
  coarse    BLOB,
  pixels_sha    BLOB,               -- the checksums its columns get in replica_groups once promoted
  embedding_sha BLOB,
  coarse_sha    BLOB
) STRICT;

CREATE TABLE IF NOT EXISTS replica_pending_members (
  grp        INTEGER NOT NULL,
  slot       INTEGER NOT NULL,
  lookup_tag BLOB NOT NULL,
  PRIMARY KEY (grp, slot)
) STRICT;
`;

const PENDING = { versions: 'replica_pending', members: 'replica_pending_members' };

export const REPLICA_SCHEMA: CollectionSchema = {
  version: REPLICA_SCHEMA_VERSION,
  tables: TABLES,
  // Version 3 had no pending changes: their tables are created after the migration.
  migrations: { 3: () => {} },
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

/**
 * What settling a group against C1's digest did: C2 served that version
 * already, promoted its pending change to it, or holds neither.
 */
export type Settled = 'current' | 'promoted' | 'differs';

/** A group as C2 holds it, for `fnn check`: what it serves and what is pending. */
export interface ReplicaGroupState {
  group: number;
  digest?: string;
  members: number;
  pending?: { digest?: string; members: number };
}

export class ReplicaStore extends CollectionStore {
  /** `key` is C1's public key, under which the replica is encrypted. */
  constructor(path: string, key: PublicKey) {
    super(path, key, REPLICA_SCHEMA);
  }

  /**
   * Take one group's change as the owner re-encrypted it (its members, none:
   * the group is dropped, version and columns) as the group's pending change,
   * replacing any earlier one; what C2 serves does not change until
   * `settle` sees C1 hold it. C1 is the authority on what exists and
   * arbitrates concurrent changes. Refused, storing nothing, for a replica
   * bound to another collection (the first change binds an unbound one).
   */
  stageGroup(shape: ReplicaShape, change: ReplicaGroupChange, collectionId: Uint8Array): void {
    this.collection.transaction(() => {
      this.collection.checkCollectionId(collectionId, true);
      this.collection.checkShape(shape, true);
      const p = this.params()!;
      checkGroupVersion(change.version);
      const slots = new Set<number>();
      for (const m of change.members) {
        checkSlot(m.slot, p.groupSize);
        if (slots.has(m.slot)) throw invalidInput(`slot ${m.slot} named twice`);
        slots.add(m.slot);
      }
      let columns: (Buffer | null)[] = new Array<null>(6).fill(null); // REPLICA_BLOBS, then their checksums
      if (change.members.length === 0) {
        if (change.columns) throw invalidInput(`group ${change.group} is left empty but columns were sent`);
      } else {
        const c = change.columns;
        if (!c) throw invalidInput(`group ${change.group} has members but no packed columns`);
        checkColumnCounts(p, c, `group ${change.group}`);
        const blobs = [this.toBlob(c.distance), this.toBlob(c.bound), this.toBlob(c.coarse)]; // REPLICA_BLOBS' order
        columns = [...blobs, ...checksumsOf(REPLICA_BLOBS, change.group, blobs)];
      }
      this.dropPending(change.group);
      this.db
        .prepare(
          'INSERT INTO replica_pending (grp, version, pixels, embedding, coarse, pixels_sha, embedding_sha, coarse_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(change.group, change.version, ...columns);
      const insert = this.db.prepare('INSERT INTO replica_pending_members (grp, slot, lookup_tag) VALUES (?, ?, ?)');
      for (const m of change.members) insert.run(change.group, m.slot, m.lookupTag);
    });
    this.collection.checkpoint(); // a replaced pending change's ciphertexts leave the WAL
  }

  /** Records C2 will serve once its pending changes are committed (Replica.PutGroup's reply). */
  countWithPending(): number {
    const row = this.db
      .prepare(
        `SELECT (SELECT count(*) FROM replica_members WHERE grp NOT IN (SELECT grp FROM replica_pending))
              + (SELECT count(*) FROM replica_pending_members) AS n`,
      )
      .get() as { n: number };
    return row.n;
  }

  /** A change staged and settled at once, as the owner does when C1 already holds it (and the store's tests). */
  putGroup(shape: ReplicaShape, change: ReplicaGroupChange, collectionId: Uint8Array = this.collection.collectionId() ?? randomId()): void {
    this.stageGroup(shape, change, collectionId);
    const tags: (Buffer | null)[] = new Array(this.params()?.groupSize ?? 0).fill(null);
    for (const m of change.members) tags[m.slot] = m.lookupTag;
    this.settleGroups(
      collectionId,
      [{ group: change.group, digest: change.members.length > 0 ? groupDigest(change.version, tags) : undefined }],
      true,
    );
  }

  /**
   * THE rule of replica changes (docs/ARCHITECTURE.md, "Replica changes"), in
   * one place: C1 holds `digest` of each group (undefined: C1 holds it
   * empty). C2 promotes its pending change if that is it (so a lost commit
   * heals at the next session); keeps serving its committed version if that
   * is it; otherwise the group differs. A pending change C1 does not hold is dropped
   * only on the owner's word (`dropStale`, Replica.CommitGroup): a session may
   * see C1 just before it commits that very change.
   */
  settleGroups(collectionId: Uint8Array | undefined, groups: readonly { group: number; digest?: string }[], dropStale: boolean): Settled[] {
    let promoted = false;
    const settled = this.collection.transaction(() => {
      if (collectionId !== undefined) this.collection.checkCollectionId(collectionId, false);
      const p = this.params();
      const settled = groups.map(({ group, digest }): Settled => {
        const committed = p && this.collection.groupDigest(group, p.groupSize);
        const pendingRow = this.db.prepare('SELECT version FROM replica_pending WHERE grp = ?').get(group) as
          { version: Buffer } | undefined;
        // A pending change of C1's digest first, even when the committed version has it too: the same
        // version re-encrypted (`fnn repair` of columns damaged at rest) replaces the stored one.
        if (pendingRow && p && this.pendingDigest(group, p.groupSize) === digest) {
          this.promote(group);
          promoted = true;
          return 'promoted';
        }
        if (committed === digest) {
          if (pendingRow && dropStale) this.dropPending(group);
          return 'current';
        }
        return 'differs';
      });
      if (this.count === 0 && !this.hasPending()) this.collection.clearFacts();
      return settled;
    });
    if (promoted) this.collection.checkpoint(); // the replaced ciphertexts leave the WAL
    return settled;
  }

  /** Every group C2 serves or holds a pending change of, in group order. */
  groupStates(): ReplicaGroupState[] {
    const p = this.params();
    if (!p) return [];
    const groups = (
      this.db.prepare('SELECT grp FROM replica_groups UNION SELECT grp FROM replica_pending ORDER BY grp').all() as { grp: number }[]
    ).map((r) => r.grp);
    const count = (table: string, group: number) =>
      (this.db.prepare(`SELECT count(*) AS n FROM ${table} WHERE grp = ?`).get(group) as { n: number }).n;
    return groups.map((group) => {
      const pending = this.db.prepare('SELECT 1 FROM replica_pending WHERE grp = ?').get(group) !== undefined;
      return {
        group,
        digest: this.collection.groupDigest(group, p.groupSize),
        members: count('replica_members', group),
        pending: pending ? { digest: this.pendingDigest(group, p.groupSize), members: count(PENDING.members, group) } : undefined,
      };
    });
  }

  /** The collection this replica is bound to (its first change's), if any. */
  collectionId(): Buffer | undefined {
    return this.collection.collectionId();
  }

  shape(): ReplicaShape | undefined {
    return this.collection.shape();
  }

  /** The replica as the fast protocol's C2 side reads it. */
  source(): ReplicaSource & { digest(group: number): string | undefined } {
    const params = this.params();
    if (!params) throw invalidInput('the replica is empty');
    const packed = this.db.prepare(
      'SELECT pixels, pixels_sha, embedding, embedding_sha, coarse, coarse_sha FROM replica_groups WHERE grp = ?',
    );
    const digest = (group: number) => this.collection.groupDigest(group, params.groupSize);
    return {
      params,
      digest,
      agree: (collectionId, groups) => {
        const listed = new Set(groups.map((g) => g.group));
        // A group C1 does not list has no members at C1: a pending change that empties it is what C1 holds.
        const emptied = (this.db.prepare('SELECT grp FROM replica_pending WHERE pixels IS NULL').all() as { grp: number }[])
          .filter((r) => !listed.has(r.grp))
          .map((r) => ({ group: r.grp, digest: undefined }));
        // A C1 before its first upload (or on a database from before ids) has no id: the digests alone decide.
        const settled = this.settleGroups(collectionId.length > 0 ? collectionId : undefined, [...groups, ...emptied], false);
        return groups.filter((_, i) => settled[i] === 'differs').map((g) => g.group);
      },
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family, expectedDigest: string) => {
        const now = digest(group);
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

  private hasPending(): boolean {
    return this.db.prepare('SELECT 1 FROM replica_pending LIMIT 1').get() !== undefined;
  }

  private pendingDigest(group: number, groupSize: number): string | undefined {
    const row = this.db.prepare('SELECT pixels FROM replica_pending WHERE grp = ?').get(group) as { pixels: Buffer | null } | undefined;
    // A pending change that empties the group leaves it without a digest, as C1 has none for an empty group.
    return row?.pixels ? this.collection.groupDigest(group, groupSize, PENDING) : undefined;
  }

  /** The group's pending change becomes what C2 serves. */
  private promote(group: number): void {
    this.db.prepare('DELETE FROM replica_members WHERE grp = ?').run(group);
    this.db.prepare('DELETE FROM replica_groups WHERE grp = ?').run(group);
    this.db
      .prepare(
        `INSERT INTO replica_groups (grp, version, pixels, embedding, coarse, pixels_sha, embedding_sha, coarse_sha)
         SELECT grp, version, pixels, embedding, coarse, pixels_sha, embedding_sha, coarse_sha FROM replica_pending
         WHERE grp = ? AND pixels IS NOT NULL`,
      )
      .run(group);
    this.db
      .prepare(
        'INSERT INTO replica_members (grp, slot, lookup_tag) SELECT grp, slot, lookup_tag FROM replica_pending_members WHERE grp = ?',
      )
      .run(group);
    this.dropPending(group);
  }

  private dropPending(group: number): void {
    this.db.prepare('DELETE FROM replica_pending_members WHERE grp = ?').run(group);
    this.db.prepare('DELETE FROM replica_pending WHERE grp = ?').run(group);
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return this.collection.toBlob(ciphers);
  }
}

/** A fresh collection id, for a replica put whole without one (the store's own tests). */
function randomId(): Buffer {
  return randomBytes(16);
}
