import Database from 'better-sqlite3';
import {
  blobToCiphers,
  ciphersToBlob,
  packColumns,
  groupDigest,
  invalidInput,
  protocolState,
  packingParams,
  type Family,
  type GroupMember,
  type PackingParams,
  type PublicKey,
  type ReplicaSource,
  type SlotRecord,
} from '@fnn/shared';

// C2's replica of the packed records, for the fast protocol: every record's
// slot ciphertexts under C1's key (C2 cannot decrypt them), and each group's
// packed columns. The schema is here, in one place; WAL mode, one transaction
// per change, deleted rows overwritten.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS collection (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS replica (
  lookup_tag BLOB NOT NULL UNIQUE,  -- HMAC_k(ID), the same tag C1 holds
  grp        INTEGER NOT NULL,
  slot       INTEGER NOT NULL,
  pixels     BLOB NOT NULL,         -- E1(x_i 2^(w slot))
  embedding  BLOB NOT NULL,         -- E1(e_i 2^(w slot))
  version    BLOB NOT NULL,         -- the owner's random upload version, the same at C1
  PRIMARY KEY (grp, slot)
) STRICT;

CREATE TABLE IF NOT EXISTS packed_groups (
  grp       INTEGER PRIMARY KEY,
  pixels    BLOB NOT NULL,
  embedding BLOB NOT NULL
) STRICT;
`;

export interface ReplicaShape {
  width: number;
  height: number;
  maxValue: number;
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
    return (this.db.prepare('SELECT count(*) AS n FROM replica').get() as { n: number }).n;
  }

  params(): PackingParams | undefined {
    const width = this.fact('width');
    if (width === undefined) return undefined;
    return packingParams(this.key.bits, Number(width), Number(this.fact('height')), Number(this.fact('max_value')));
  }

  /** Store one record in its slot, replacing whatever held that slot or that tag before. */
  store(shape: ReplicaShape, lookupTag: Buffer, group: number, slot: number, record: SlotRecord): void {
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
        if (slot >= p.groupSize) throw invalidInput(`slot ${slot} outside a group of ${p.groupSize}`);
        if (record.pixels.length !== shape.width * shape.height || record.embedding.length !== 2 * p.blockRows * p.blockCols)
          throw invalidInput('packed record of the wrong size');
        const touched = new Set<number>([group]);
        for (const row of this.db
          .prepare('DELETE FROM replica WHERE lookup_tag = ? OR (grp = ? AND slot = ?) RETURNING grp')
          .all(lookupTag, group, slot) as { grp: number }[])
          touched.add(row.grp);
        this.db
          .prepare('INSERT INTO replica (lookup_tag, grp, slot, pixels, embedding, version) VALUES (?, ?, ?, ?, ?, ?)')
          .run(lookupTag, group, slot, this.toBlob(record.pixels), this.toBlob(record.embedding), Buffer.from(record.version));
        for (const g of touched) this.repack(g);
      })
      .immediate();
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Remove records by tag (unknown tags are ignored: C1 is the authority on what exists). */
  delete(tags: Buffer[]): number {
    const n = this.db
      .transaction(() => {
        const touched = new Set<number>();
        let n = 0;
        for (const tag of tags)
          for (const row of this.db.prepare('DELETE FROM replica WHERE lookup_tag = ? RETURNING grp').all(tag) as { grp: number }[]) {
            touched.add(row.grp);
            n++;
          }
        for (const g of touched) this.repack(g);
        if (this.count === 0) this.db.prepare("DELETE FROM collection WHERE name != 'key'").run();
        return n;
      })
      .immediate();
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    return n;
  }

  /** The replica as the fast protocol's C2 side reads it. */
  source(): ReplicaSource {
    const params = this.params();
    if (!params) throw invalidInput('the replica is empty');
    const packed = this.db.prepare('SELECT pixels, embedding FROM packed_groups WHERE grp = ?');
    return {
      params,
      digest: (group) => this.digest(group, params.groupSize),
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family, expectedDigest: string) => {
        const now = this.digest(group, params.groupSize);
        if (now === undefined || now !== expectedDigest)
          throw protocolState('a group changed during the query; run the query again');
        const row = packed.get(group) as { pixels: Buffer; embedding: Buffer };
        return this.fromBlob(family === 'distance' ? row.pixels : row.embedding);
      },
    };
  }

  private digest(group: number, groupSize: number): string | undefined {
    const rows = this.db.prepare('SELECT lookup_tag, version, slot FROM replica WHERE grp = ?').all(group) as {
      lookup_tag: Buffer;
      version: Buffer;
      slot: number;
    }[];
    if (rows.length === 0) return undefined;
    const members: (GroupMember | null)[] = new Array(groupSize).fill(null);
    for (const r of rows) members[r.slot] = { tag: r.lookup_tag, version: r.version };
    return groupDigest(members);
  }

  private repack(group: number): void {
    const members = this.db.prepare('SELECT pixels, embedding FROM replica WHERE grp = ?').all(group) as {
      pixels: Buffer;
      embedding: Buffer;
    }[];
    if (members.length === 0) {
      this.db.prepare('DELETE FROM packed_groups WHERE grp = ?').run(group);
      return;
    }
    const product = (blobs: Buffer[]) => this.toBlob(packColumns(this.key, blobs.map((b) => this.fromBlob(b))));
    this.db
      .prepare(
        `INSERT INTO packed_groups (grp, pixels, embedding) VALUES (?, ?, ?)
         ON CONFLICT(grp) DO UPDATE SET pixels = excluded.pixels, embedding = excluded.embedding`,
      )
      .run(group, product(members.map((m) => m.pixels)), product(members.map((m) => m.embedding)));
  }



  private toBlob(ciphers: bigint[]): Buffer {
    return ciphersToBlob(ciphers, this.key.cipherBytes);
  }

  private fromBlob(blob: Buffer): bigint[] {
    return blobToCiphers(blob, this.key.cipherBytes);
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
