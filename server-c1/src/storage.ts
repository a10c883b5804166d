import Database from 'better-sqlite3';
import {
  blobToCiphers,
  ciphersToBlob,
  packColumns,
  groupDigest,
  invalidInput,
  notFound,
  packingParams,
  protocolState,
  type EncryptedStats,
  type Family,
  type GroupMember,
  type PackedRecordSource,
  type PackingParams,
  type PublicKey,
  type RecordSource,
  type SlotRecord,
} from '@fnn/shared';
import { SCHEMA, SCHEMA_VERSION } from './schema';

/** How long a slot handed out by allocateSlot stays reserved for its record (encrypting a large image takes a while). */
export const RESERVATION_MS = 10 * 60_000;
const MAX_RESERVATIONS = 10_000;

export interface CollectionShape {
  width: number;
  height: number;
  maxValue: number;
}

export interface StoredRecord extends EncryptedStats {
  lookupTag: Buffer;
  encryptedId: Buffer;
  sealedImage: Buffer;
  pixels: bigint[];
  group: number;
  slot: number;
  slotRecord: SlotRecord;
}

/**
 * C1's record store. Each upload and each delete is one transaction (WAL mode),
 * so a crash leaves every record either fully there or not there at all.
 */
export class RecordStore {
  private readonly db: Database.Database;

  /** A database of records encrypted under `key` (C2's public key). */
  constructor(
    path: string,
    private readonly key: PublicKey,
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('secure_delete = ON'); // deleted ciphertexts are overwritten, not just unlinked
    try {
      this.db.exec(SCHEMA);
      this.bindKey();
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  get count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
  }

  shape(): CollectionShape | undefined {
    const width = this.fact('width');
    if (width === undefined) return undefined;
    return { width: Number(width), height: Number(this.fact('height')), maxValue: Number(this.fact('max_value')) };
  }

  /** Store (or replace, by lookup tag) records of one shape, all in one transaction. */
  upsert(shape: CollectionShape, records: StoredRecord[]): { stored: number; replaced: number } {
    const write = this.db.transaction(() => {
      const current = this.shape();
      if (current === undefined) {
        this.setFact('width', String(shape.width));
        this.setFact('height', String(shape.height));
        this.setFact('max_value', String(shape.maxValue));
      } else if (current.width !== shape.width || current.height !== shape.height) {
        throw invalidInput(
          `image is ${shape.width}x${shape.height}, the collection's images are ${current.width}x${current.height}`,
        );
      } else if (current.maxValue !== shape.maxValue) {
        throw invalidInput(`image pixel depth ${shape.maxValue} differs from the collection's ${current.maxValue}`);
      }
      let replaced = 0;
      const d = shape.width * shape.height;
      const params = this.params()!;
      // A replacement keeps its seq: the upload order (and so the tie rule) does not change.
      const update = this.db.prepare(
        `UPDATE records SET encrypted_id = ?, sealed_image = ?, sum = ?, spread = ?, pixels = ?,
           grp = ?, slot = ?, slot_pixels = ?, slot_embedding = ?, slot_constants = ?, slot_version = ? WHERE lookup_tag = ?`,
      );
      const insert = this.db.prepare(
        `INSERT INTO records (encrypted_id, sealed_image, sum, spread, pixels, grp, slot, slot_pixels, slot_embedding,
           slot_constants, slot_version, lookup_tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const holder = this.db.prepare('SELECT lookup_tag FROM records WHERE grp = ? AND slot = ?');
      const touched = new Set<number>();
      records.forEach((r, i) => {
        const what = `record ${i + 1}`;
        if (r.pixels.length !== d) throw invalidInput(`${what} has ${r.pixels.length} pixels, expected ${d}`);
        if (r.slot >= params.groupSize) throw invalidInput(`${what}: slot ${r.slot} outside a group of ${params.groupSize}`);
        if (r.slotRecord.pixels.length !== d || r.slotRecord.embedding.length !== 2 * params.blockRows * params.blockCols)
          throw invalidInput(`${what}: packed record of the wrong size`);
        const current = holder.get(r.group, r.slot) as { lookup_tag: Buffer } | undefined;
        if (current && !current.lookup_tag.equals(r.lookupTag))
          throw protocolState(`${what}: slot ${r.group}/${r.slot} is taken; allocate a slot again`);
        const c = r.slotRecord;
        const row = [
          r.encryptedId,
          r.sealedImage,
          this.toBlob([r.sum]),
          this.toBlob([r.spread]),
          this.toBlob(r.pixels),
          r.group,
          r.slot,
          this.toBlob(c.pixels),
          this.toBlob(c.embedding),
          this.toBlob([c.distanceConstant!, c.boundConstant!]),
          Buffer.from(c.version),
        ];
        const before = this.db.prepare('SELECT grp FROM records WHERE lookup_tag = ?').get(r.lookupTag) as { grp: number } | undefined;
        if (before) touched.add(before.grp);
        if (update.run(...row, r.lookupTag).changes > 0) replaced++;
        else insert.run(...row, r.lookupTag);
        touched.add(r.group);
      });
      for (const g of touched) this.repack(g);
      return { stored: records.length - replaced, replaced };
    });
    const result = write.immediate();
    for (const r of records) this.reservations.delete(r.lookupTag.toString('hex'));
    if (result.replaced > 0) this.db.pragma('wal_checkpoint(TRUNCATE)'); // the replaced ciphertexts leave the WAL
    return result;
  }

  /** Remove records by lookup tag; all or nothing: an unknown tag deletes none. */
  delete(tags: Buffer[]): number {
    const remove = this.db.transaction(() => {
      const del = this.db.prepare('DELETE FROM records WHERE lookup_tag = ? RETURNING grp');
      const groups = new Set<number>();
      let n = 0;
      tags.forEach((tag, i) => {
        const row = del.get(tag) as { grp: number } | undefined;
        if (!row) throw notFound(`record ${i + 1} of ${tags.length} is not in the collection`);
        groups.add(row.grp);
        n++;
      });
      if (this.count === 0) this.db.prepare("DELETE FROM collection WHERE name NOT IN ('key', 'schema_version')").run();
      for (const g of groups) this.repack(g);
      return n;
    });
    const n = remove.immediate();
    this.db.pragma('wal_checkpoint(TRUNCATE)'); // the deleted pages leave the WAL too
    return n;
  }

  /** The records as the protocols see them, in upload order, frozen at this moment. */
  snapshot(): RecordSource & { encryptedId(candidate: number): Buffer } {
    const shape = this.shape();
    const rows = this.db
      .prepare('SELECT seq, encrypted_id, sum, spread FROM records ORDER BY seq')
      .all() as { seq: number; encrypted_id: Buffer; sum: Buffer; spread: Buffer }[];
    const getPixels = this.db.prepare('SELECT pixels FROM records WHERE seq = ?');
    const dimension = shape ? shape.width * shape.height : 0;
    return {
      count: rows.length,
      dimension,
      stats: async () => rows.map((r) => ({ sum: this.fromBlob(r.sum)[0], spread: this.fromBlob(r.spread)[0] })),
      pixels: async (candidate) => {
        const row = getPixels.get(rows[candidate].seq) as { pixels: Buffer } | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return this.fromBlob(row.pixels);
      },
      encryptedId: (candidate) => rows[candidate].encrypted_id,
    };
  }

  /**
   * Slots handed out and not yet stored, by lookup tag (hex): two owners
   * uploading at once must not get the same slot, or the second's replica at C2
   * overwrites the first's and the replicas disagree for good. In memory only;
   * a reservation lapses once its record is stored, or after RESERVATION_MS.
   */
  private readonly reservations = new Map<string, { group: number; slot: number; expires: number }>();

  /** The fast protocol's layout: where a record goes (its own slot if it is already stored). */
  allocateSlot(lookupTag: Buffer): { group: number; slot: number } {
    const own = this.db.prepare('SELECT grp, slot FROM records WHERE lookup_tag = ?').get(lookupTag) as
      | { grp: number; slot: number }
      | undefined;
    if (own) return { group: own.grp, slot: own.slot };
    const now = Date.now();
    const key = lookupTag.toString('hex');
    this.reservations.delete(key); // its own earlier reservation does not count against it
    for (const [t, r] of this.reservations) if (r.expires <= now) this.reservations.delete(t);
    if (this.reservations.size >= MAX_RESERVATIONS) this.reservations.delete(this.reservations.keys().next().value!);
    const params = this.params();
    let assignment: { group: number; slot: number };
    if (!params) {
      // No shape yet, so no group size: each concurrent first upload gets a group of its own.
      const groups = new Set([...this.reservations.values()].map((r) => r.group));
      let group = 0;
      while (groups.has(group)) group++;
      assignment = { group, slot: 0 };
    } else {
      const stored = this.db.prepare('SELECT grp AS "group", slot FROM records').all() as { group: number; slot: number }[];
      const taken = new Set([...stored, ...this.reservations.values()].map((r) => r.group * params.groupSize + r.slot));
      let position = 0;
      while (taken.has(position)) position++;
      assignment = { group: Math.floor(position / params.groupSize), slot: position % params.groupSize };
    }
    this.reservations.set(key, { ...assignment, expires: now + RESERVATION_MS });
    return assignment;
  }

  /** The collection's packing, once its shape is known. */
  params(): PackingParams | undefined {
    const shape = this.shape();
    return shape ? packingParams(this.key.bits, shape.width, shape.height, shape.maxValue) : undefined;
  }

  /** The digest of one group as it is now (members' tags and upload versions in slot order). */
  private groupDigestNow(group: number, groupSize: number): string {
    const members: (GroupMember | null)[] = new Array(groupSize).fill(null);
    for (const r of this.db.prepare('SELECT lookup_tag, slot_version, slot FROM records WHERE grp = ?').all(group) as {
      lookup_tag: Buffer;
      slot_version: Buffer;
      slot: number;
    }[])
      members[r.slot] = { tag: r.lookup_tag, version: r.slot_version };
    return groupDigest(members);
  }

  /** The packed groups as the fast protocol sees them, candidates numbered in upload order. */
  packedSnapshot(): PackedRecordSource & { sealedImage(candidate: number): Buffer; encryptedId(candidate: number): Buffer } {
    const params = this.params();
    if (!params) throw invalidInput('the collection is empty');
    const rows = this.db
      .prepare('SELECT lookup_tag, encrypted_id, grp, slot FROM records ORDER BY seq')
      .all() as { lookup_tag: Buffer; encrypted_id: Buffer; grp: number; slot: number }[];
    const members = new Map<number, number[]>();
    rows.forEach((r, candidate) => {
      let m = members.get(r.grp);
      if (!m) members.set(r.grp, (m = new Array(params.groupSize).fill(-1)));
      m[r.slot] = candidate;
    });
    const groups = [...members.entries()]
      .sort(([a], [b]) => a - b)
      .map(([group, m]) => ({ group, members: m, digest: this.groupDigestNow(group, params.groupSize) }));
    const digests = new Map(groups.map((g) => [g.group, g.digest]));
    const getPacked = this.db.prepare('SELECT pixels, embedding, constants FROM packed_groups WHERE grp = ?');
    const getSealed = this.db.prepare('SELECT sealed_image FROM records WHERE lookup_tag = ?');
    return {
      params,
      count: rows.length,
      groups,
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family) => {
        if (this.groupDigestNow(group, params.groupSize) !== digests.get(group))
          throw protocolState('a group changed during the query; run the query again');
        const row = getPacked.get(group) as { pixels: Buffer; embedding: Buffer; constants: Buffer };
        const [distanceConstant, boundConstant] = this.fromBlob(row.constants);
        return family === 'distance'
          ? { columns: this.fromBlob(row.pixels), constant: distanceConstant }
          : { columns: this.fromBlob(row.embedding), constant: boundConstant };
      },
      encryptedId: (candidate) => rows[candidate].encrypted_id,
      sealedImage: (candidate) => {
        const row = getSealed.get(rows[candidate].lookup_tag) as { sealed_image: Buffer } | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return row.sealed_image;
      },
    };
  }

  /** Rewrite one group's packed columns from its members (or drop it when it has none). */
  private repack(group: number): void {
    const members = this.db
      .prepare('SELECT slot_pixels, slot_embedding, slot_constants FROM records WHERE grp = ?')
      .all(group) as { slot_pixels: Buffer; slot_embedding: Buffer; slot_constants: Buffer }[];
    if (members.length === 0) {
      this.db.prepare('DELETE FROM packed_groups WHERE grp = ?').run(group);
      return;
    }
    const product = (blobs: Buffer[]) => this.toBlob(packColumns(this.key, blobs.map((b) => this.fromBlob(b))));
    this.db
      .prepare(
        `INSERT INTO packed_groups (grp, pixels, embedding, constants) VALUES (?, ?, ?, ?)
         ON CONFLICT(grp) DO UPDATE SET pixels = excluded.pixels, embedding = excluded.embedding, constants = excluded.constants`,
      )
      .run(
        group,
        product(members.map((m) => m.slot_pixels)),
        product(members.map((m) => m.slot_embedding)),
        product(members.map((m) => m.slot_constants)),
      );
  }

  integrityCheck(): string {
    return (this.db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
  }



  /** A database belongs to one Paillier key: refuse to mix ciphertexts of two keys. */
  private bindKey(): void {
    const stored = this.fact('key');
    if (stored === undefined) this.setFact('key', this.key.fingerprint());
    else if (stored !== this.key.fingerprint())
      throw invalidInput('this database holds records encrypted under another Paillier key');
    const version = this.fact('schema_version');
    if (version === undefined) this.setFact('schema_version', String(SCHEMA_VERSION));
    else if (version !== String(SCHEMA_VERSION))
      throw invalidInput(`database schema ${version}, this C1 needs ${SCHEMA_VERSION}; upload the collection into a new database`);
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return ciphersToBlob(ciphers, this.key.cipherBytes);
  }

  private fromBlob(blob: Buffer): bigint[] {
    return blobToCiphers(blob, this.key.cipherBytes);
  }

  private fact(name: string): string | undefined {
    return (this.db.prepare('SELECT value FROM collection WHERE name = ?').get(name) as { value: string } | undefined)
      ?.value;
  }

  private setFact(name: string, value: string): void {
    this.db.prepare('INSERT INTO collection (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value);
  }
}
