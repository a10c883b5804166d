import { checkGroupVersion, checkSlot, CollectionStore } from '@fnn/server-common';
import {
  invalidInput,
  notFound,
  checkColumnCounts,
  packingParams,
  protocolState,
  type Family,
  type Layout,
  type PackedColumns,
  type PackedRecordSource,
  type PackingParams,
  type PaperLayout,
  type PublicKey,
  type RecordSource,
} from '@fnn/shared';
import { SCHEMA } from './schema';

export interface CollectionShape {
  width: number;
  height: number;
  maxValue: number;
  /** What the collection stores for the protocols (always 'packed'; 'paper' for fnn and bf); fixed by the first upload. */
  layouts: Layout[];
}

/** A new or replaced member of a group. */
export interface StoredRecord {
  lookupTag: Buffer;
  encryptedId: Buffer;
  sealedImage: Buffer;
  slot: number;
  paper?: PaperLayout;
}

/** One change to one group: what the owner read (baseVersion), its new version and columns. */
export interface GroupChange {
  group: number;
  /** Empty when the owner saw the group empty. */
  baseVersion: Buffer;
  version: Buffer;
  /** Absent when the change leaves the group empty. */
  columns?: PackedColumns;
}

/** A member of a group as the owner needs it to re-encrypt the group. */
export interface GroupMemberRecord {
  slot: number;
  lookupTag: Buffer;
  sealedImage: Buffer;
}

/**
 * C1's record store. Each upload and each delete is one transaction (WAL mode),
 * so a crash leaves every record either fully there or not there at all, and
 * every group's packed columns in step with its members.
 */
export class RecordStore extends CollectionStore {
  /** A database of records encrypted under `key` (C2's public key). */
  constructor(path: string, key: PublicKey) {
    super(path, key, SCHEMA);
  }

  shape(): CollectionShape | undefined {
    const shape = this.collection.shape();
    return shape && { ...shape, layouts: (this.collection.fact('layouts') ?? '').split(',').filter(Boolean) as Layout[] };
  }

  /**
   * Store (or replace, by lookup tag) records of one group with the group's
   * new packed columns, all in one transaction. Refused if the group changed
   * since the owner read it (its version differs from `change.baseVersion`).
   */
  upsertGroup(shape: CollectionShape, change: GroupChange, records: StoredRecord[]): { stored: number; replaced: number } {
    const result = this.collection.transaction(() => {
      this.checkShape(shape);
      if (records.length === 0) throw invalidInput('an upload names no records');
      const params = this.params()!;
      const d = shape.width * shape.height;
      this.checkBase(change);
      if (!change.columns) throw invalidInput(`group ${change.group} would have members but no packed columns`);
      let replaced = 0;
      // A replacement keeps its seq: the upload order (and so the tie rule) does not change.
      const update = this.db.prepare(
        'UPDATE records SET encrypted_id = ?, sealed_image = ?, sum = ?, spread = ?, pixels = ? WHERE lookup_tag = ?',
      );
      const insert = this.db.prepare(
        'INSERT INTO records (encrypted_id, sealed_image, sum, spread, pixels, lookup_tag, grp, slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const holder = this.db.prepare('SELECT lookup_tag FROM records WHERE grp = ? AND slot = ?');
      const place = this.db.prepare('SELECT grp, slot FROM records WHERE lookup_tag = ?');
      records.forEach((r, i) => {
        const what = `record ${i + 1}`;
        checkSlot(r.slot, params.groupSize, what);
        const perRecord = shape.layouts.includes('paper');
        if (perRecord !== (r.paper !== undefined))
          throw invalidInput(`${what}: ${perRecord ? 'lacks' : 'carries'} the paper's layout, unlike its collection`);
        if (r.paper && r.paper.pixels.length !== d) throw invalidInput(`${what} has ${r.paper.pixels.length} pixels, expected ${d}`);
        const own = place.get(r.lookupTag) as { grp: number; slot: number } | undefined;
        if (own && (own.grp !== change.group || own.slot !== r.slot))
          throw protocolState(`${what} is stored in another slot; allocate its slot again`);
        const current = holder.get(change.group, r.slot) as { lookup_tag: Buffer } | undefined;
        if (current && !current.lookup_tag.equals(r.lookupTag))
          throw protocolState(`${what}: slot ${change.group}/${r.slot} is taken; allocate a slot again`);
        const paper = r.paper
          ? [this.toBlob([r.paper.sum]), this.toBlob([r.paper.spread]), this.toBlob(r.paper.pixels)]
          : [null, null, null];
        if (own) {
          update.run(r.encryptedId, r.sealedImage, ...paper, r.lookupTag);
          replaced++;
        } else insert.run(r.encryptedId, r.sealedImage, ...paper, r.lookupTag, change.group, r.slot);
      });
      this.writeColumns(change, params);
      return { stored: records.length - replaced, replaced };
    });
    if (result.replaced > 0) this.collection.checkpoint(); // the replaced ciphertexts leave the WAL
    return result;
  }

  /**
   * Remove records by lookup tag, with the re-encrypted columns of every group
   * that loses a member; all or nothing: an unknown tag deletes none.
   */
  delete(tags: Buffer[], changes: GroupChange[]): number {
    const n = this.collection.transaction(() => {
      const del = this.db.prepare('DELETE FROM records WHERE lookup_tag = ? RETURNING grp');
      const groups = new Set<number>();
      let n = 0;
      tags.forEach((tag, i) => {
        const row = del.get(tag) as { grp: number } | undefined;
        if (!row) throw notFound(`record ${i + 1} of ${tags.length} is not in the collection`);
        groups.add(row.grp);
        n++;
      });
      const params = this.params()!;
      const changed = new Set<number>();
      for (const change of changes) {
        if (!groups.has(change.group) || changed.has(change.group))
          throw invalidInput(`group ${change.group} is changed but loses no member, or is changed twice`);
        changed.add(change.group);
        this.checkBase(change);
        this.writeColumns(change, params);
      }
      for (const g of groups) if (!changed.has(g)) throw invalidInput(`group ${g} loses a member but its re-encrypted columns are missing`);
      if (this.count === 0) this.collection.clearFacts();
      return n;
    });
    this.collection.checkpoint(); // the deleted pages leave the WAL too
    return n;
  }

  /** The records as the protocols see them, in upload order, frozen at this moment. */
  snapshot(): RecordSource & { encryptedId(candidate: number): Buffer } {
    const shape = this.shape();
    if (shape && !shape.layouts.includes('paper'))
      throw protocolState("this collection was uploaded without the paper's per-pixel layout: query it with the fast protocol");
    const rows = this.db.prepare('SELECT seq, encrypted_id, sum, spread FROM records ORDER BY seq').all() as {
      seq: number;
      encrypted_id: Buffer;
      sum: Buffer;
      spread: Buffer;
    }[]; // non-null: the collection has the paper's layout
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
   * The fast protocol's layout: where each record goes (its own slot if it is
   * already stored), filling free slots first. Nothing is reserved: the
   * upload that follows is refused if another took the slot meanwhile.
   */
  allocateSlots(shape: Omit<CollectionShape, 'layouts'>, tags: Buffer[]): { group: number; slot: number; stored: boolean }[] {
    this.checkShape({ width: shape.width, height: shape.height, maxValue: shape.maxValue }); // asking only: fixes nothing
    const { groupSize } = this.params() ?? packingParams(this.key.bits, shape.width, shape.height, shape.maxValue);
    const place = this.db.prepare('SELECT grp, slot FROM records WHERE lookup_tag = ?');
    const taken = new Set(
      (this.db.prepare('SELECT grp, slot FROM records').all() as { grp: number; slot: number }[]).map((r) => r.grp * groupSize + r.slot),
    );
    const fresh = new Map<string, { group: number; slot: number; stored: boolean }>();
    let position = 0;
    return tags.map((tag) => {
      const own = place.get(tag) as { grp: number; slot: number } | undefined;
      if (own) return { group: own.grp, slot: own.slot, stored: true };
      const key = tag.toString('hex');
      const earlier = fresh.get(key);
      if (earlier) return earlier;
      while (taken.has(position)) position++;
      taken.add(position);
      const at = { group: Math.floor(position / groupSize), slot: position % groupSize, stored: false };
      fresh.set(key, at);
      return at;
    });
  }

  /**
   * The collection's id, fixed now if it has none (the first AllocateSlots of
   * its first upload, before anything reaches C2): C2 binds it at its first
   * replica change and refuses another C1's changes and sessions.
   */
  fixCollectionId(): Buffer {
    return this.collection.fixCollectionId();
  }

  collectionId(): Buffer | undefined {
    return this.collection.collectionId();
  }

  /** Every group with members: its digest (as the fast protocol presents it to C2) and member count, for `fnn check`. */
  groupStates(): { group: number; digest: string; members: number }[] {
    const params = this.params();
    if (!params) return [];
    const rows = this.db.prepare('SELECT grp, count(*) AS n FROM records GROUP BY grp ORDER BY grp').all() as { grp: number; n: number }[];
    return rows.map((r) => ({ group: r.grp, digest: this.groupDigestNow(r.grp, params.groupSize), members: r.n }));
  }

  /** A group's version and members, for the owner to re-encrypt its columns. */
  group(group: number): { version: Buffer; members: GroupMemberRecord[] } {
    const row = this.db.prepare('SELECT version FROM packed_groups WHERE grp = ?').get(group) as { version: Buffer } | undefined;
    const members = (
      this.db.prepare('SELECT slot, lookup_tag, sealed_image FROM records WHERE grp = ? ORDER BY slot').all(group) as {
        slot: number;
        lookup_tag: Buffer;
        sealed_image: Buffer;
      }[]
    ).map((r) => ({ slot: r.slot, lookupTag: r.lookup_tag, sealedImage: r.sealed_image }));
    return { version: row?.version ?? Buffer.alloc(0), members };
  }

  /**
   * The digest of a group with members as it is now. Its packed columns (and
   * version) are written in the same transaction as its members: a group
   * without them was emptied meanwhile.
   */
  private groupDigestNow(group: number, groupSize: number): string {
    const digest = this.collection.groupDigest(group, groupSize);
    if (digest === undefined) throw protocolState('a group changed during the query; run the query again');
    return digest;
  }

  /** The packed groups as the fast protocol sees them, candidates numbered in upload order. */
  packedSnapshot(): PackedRecordSource & { sealedImage(candidate: number): Buffer; encryptedId(candidate: number): Buffer } {
    const params = this.params();
    if (!params) throw invalidInput('the collection is empty');
    const rows = this.db.prepare('SELECT lookup_tag, encrypted_id, grp, slot FROM records ORDER BY seq').all() as {
      lookup_tag: Buffer;
      encrypted_id: Buffer;
      grp: number;
      slot: number;
    }[];
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
      collectionId: this.collectionId() ?? Buffer.alloc(0),
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family) => {
        if (this.groupDigestNow(group, params.groupSize) !== digests.get(group))
          throw protocolState('a group changed during the query; run the query again');
        const row = getPacked.get(group) as { pixels: Buffer; embedding: Buffer; constants: Buffer };
        const [distanceConstant, boundConstant] = this.fromBlob(row.constants);
        // The columns as stored: the multi-exponentiation reads the bytes.
        const width = this.key.cipherBytes;
        return family === 'distance'
          ? { columns: { bytes: row.pixels, width }, constant: distanceConstant }
          : { columns: { bytes: row.embedding, width }, constant: boundConstant };
      },
      encryptedId: (candidate) => rows[candidate].encrypted_id,
      sealedImage: (candidate) => {
        const row = getSealed.get(rows[candidate].lookup_tag) as { sealed_image: Buffer } | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return row.sealed_image;
      },
    };
  }

  /** The first upload sets the collection's shape; later ones must match it. */
  private checkShape(shape: Omit<CollectionShape, 'layouts'> & { layouts?: Layout[] }): void {
    const current = this.shape();
    const layouts = shape.layouts && [...shape.layouts].sort().join(',');
    // Without the layouts the caller is only asking: nothing to record yet.
    this.collection.checkShape(shape, layouts !== undefined);
    if (current === undefined) {
      if (layouts !== undefined) this.collection.setFact('layouts', layouts);
    } else if (layouts !== undefined && layouts !== [...current.layouts].sort().join(',')) {
      throw invalidInput(
        current.layouts.includes('paper')
          ? "the collection carries the paper's per-pixel layout: upload with it (drop --no-paper-layout)"
          : "the collection was uploaded without the paper's per-pixel layout: upload with --no-paper-layout",
      );
    }
  }

  /** Optimistic concurrency: the owner encrypted the group as it was at baseVersion. */
  private checkBase(change: GroupChange): void {
    checkGroupVersion(change.version);
    const { version } = this.group(change.group);
    if (!version.equals(change.baseVersion))
      throw protocolState(`group ${change.group} changed since it was read; run the upload or delete again`);
  }

  /** Write a group's new columns and version, or drop the group when it has no members left. */
  private writeColumns(change: GroupChange, params: PackingParams): void {
    const members = (this.db.prepare('SELECT count(*) AS n FROM records WHERE grp = ?').get(change.group) as { n: number }).n;
    if (members === 0) {
      if (change.columns) throw invalidInput(`group ${change.group} is left empty but columns were sent`);
      this.db.prepare('DELETE FROM packed_groups WHERE grp = ?').run(change.group);
      return;
    }
    const c = change.columns;
    if (!c) throw invalidInput(`group ${change.group} keeps members but its re-encrypted columns are missing`);
    checkColumnCounts(params, c, `group ${change.group}`);
    if (c.distanceConstant === undefined || c.boundConstant === undefined)
      throw invalidInput(`group ${change.group}: packed columns without their constants`);
    this.db
      .prepare(
        `INSERT INTO packed_groups (grp, version, pixels, embedding, constants) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(grp) DO UPDATE SET version = excluded.version, pixels = excluded.pixels,
           embedding = excluded.embedding, constants = excluded.constants`,
      )
      .run(change.group, change.version, this.toBlob(c.distance), this.toBlob(c.bound), this.toBlob([c.distanceConstant, c.boundConstant]));
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return this.collection.toBlob(ciphers);
  }

  private fromBlob(blob: Buffer): bigint[] {
    return this.collection.fromBlob(blob);
  }
}
