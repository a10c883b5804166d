import Database from 'better-sqlite3';
import {
  ciphersToBlob,
  groupDigest,
  invalidInput,
  protocolState,
  packingParams,
  type Family,
  type PackedColumns,
  type PackingParams,
  type PublicKey,
  type ReplicaSource,
} from '@fnn/shared';

// C2's replica of the packed records, for the fast protocol: each group's
// packed columns under C1's key (C2 cannot decrypt them), its members' lookup
// tags and the version of its last change. The schema is here, in one place;
// WAL mode, one transaction per change, deleted rows overwritten.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS collection (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS replica_groups (
  grp       INTEGER PRIMARY KEY,
  version   BLOB NOT NULL,          -- the owner's random version of the group's last change, the same at C1
  pixels    BLOB NOT NULL,          -- E1(sum_j x_i^(j) 2^(w j))
  embedding BLOB NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS replica_members (
  grp        INTEGER NOT NULL,
  slot       INTEGER NOT NULL,
  lookup_tag BLOB NOT NULL,         -- HMAC_k(ID), the same tag C1 holds
  PRIMARY KEY (grp, slot)
) STRICT;
`;

export interface ReplicaShape {
  width: number;
  height: number;
  maxValue: number;
}

/** A group as the owner set it: members after the change, its version and columns under C1's key. */
export interface ReplicaGroupChange {
  group: number;
  version: Buffer;
  members: { slot: number; lookupTag: Buffer }[];
  /** Absent when the group is left empty. */
  columns?: PackedColumns;
}

export class ReplicaStore {
  private readonly db: Database.Database;

  /** `key` is C1's public key, under which the replica is encrypted. */
  constructor(
    path: string,
    private readonly key: PublicKey,
  ) {
    this.db = new Database(path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('secure_delete = ON');
      this.db.exec(SCHEMA);
      const bound = this.fact('key');
      if (bound === undefined) this.setFact('key', key.fingerprint());
      else if (bound !== key.fingerprint()) throw invalidInput('this replica holds records under another key of C1');
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  get count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM replica_members').get() as { n: number }).n;
  }

  params(): PackingParams | undefined {
    const width = this.fact('width');
    if (width === undefined) return undefined;
    return packingParams(this.key.bits, Number(width), Number(this.fact('height')), Number(this.fact('max_value')));
  }

  /**
   * Set one group as the owner re-encrypted it: its members (none: the group
   * is dropped), version and columns. C1 is the authority on what exists and
   * arbitrates concurrent changes; the group digests catch any disagreement.
   */
  putGroup(shape: ReplicaShape, change: ReplicaGroupChange): void {
    this.db
      .transaction(() => {
        const width = this.fact('width');
        if (width === undefined) {
          this.setFact('width', String(shape.width));
          this.setFact('height', String(shape.height));
          this.setFact('max_value', String(shape.maxValue));
        } else if (Number(width) !== shape.width || Number(this.fact('height')) !== shape.height)
          throw invalidInput(`image is ${shape.width}x${shape.height}, the replica's images are ${width}x${this.fact('height')}`);
        else if (Number(this.fact('max_value')) !== shape.maxValue)
          throw invalidInput(`image pixel depth ${shape.maxValue} differs from the replica's ${this.fact('max_value')}`);
        const p = this.params()!;
        if (change.version.length !== 16) throw invalidInput('a group change needs a 16-byte version');
        const slots = new Set<number>();
        for (const m of change.members) {
          if (!Number.isInteger(m.slot) || m.slot < 0 || m.slot >= p.groupSize) throw invalidInput(`slot ${m.slot} outside a group of ${p.groupSize}`);
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
          if (c.pixels.length !== shape.width * shape.height || c.embedding.length !== 2 * p.blockRows * p.blockCols)
            throw invalidInput('packed columns of the wrong size');
          this.db
            .prepare('INSERT INTO replica_groups (grp, version, pixels, embedding) VALUES (?, ?, ?, ?)')
            .run(change.group, change.version, this.toBlob(c.pixels), this.toBlob(c.embedding));
          const insert = this.db.prepare('INSERT INTO replica_members (grp, slot, lookup_tag) VALUES (?, ?, ?)');
          for (const m of change.members) insert.run(change.group, m.slot, m.lookupTag);
        }
        if (this.count === 0) this.db.prepare("DELETE FROM collection WHERE name != 'key'").run();
      })
      .immediate();
    this.db.pragma('wal_checkpoint(TRUNCATE)'); // replaced ciphertexts leave the WAL
  }

  /** The replica as the fast protocol's C2 side reads it. */
  source(): ReplicaSource {
    const params = this.params();
    if (!params) throw invalidInput('the replica is empty');
    const packed = this.db.prepare('SELECT pixels, embedding FROM replica_groups WHERE grp = ?');
    return {
      params,
      digest: (group) => this.digest(group, params.groupSize),
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family, expectedDigest: string) => {
        const now = this.digest(group, params.groupSize);
        if (now === undefined || now !== expectedDigest)
          throw protocolState('a group changed during the query; run the query again');
        const row = packed.get(group) as { pixels: Buffer; embedding: Buffer };
        // As stored: the multi-exponentiation reads the bytes.
        return { bytes: family === 'distance' ? row.pixels : row.embedding, width: this.key.cipherBytes };
      },
    };
  }

  private digest(group: number, groupSize: number): string | undefined {
    const row = this.db.prepare('SELECT version FROM replica_groups WHERE grp = ?').get(group) as { version: Buffer } | undefined;
    if (!row) return undefined;
    const tags: (Buffer | null)[] = new Array(groupSize).fill(null);
    for (const m of this.db.prepare('SELECT slot, lookup_tag FROM replica_members WHERE grp = ?').all(group) as { slot: number; lookup_tag: Buffer }[])
      tags[m.slot] = m.lookup_tag;
    return groupDigest(row.version, tags);
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return ciphersToBlob(ciphers, this.key.cipherBytes);
  }

  private fact(name: string): string | undefined {
    return (this.db.prepare('SELECT value FROM collection WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  private setFact(name: string, value: string): void {
    this.db
      .prepare('INSERT INTO collection (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value')
      .run(name, value);
  }
}
