import { checkGroupVersion, checksumsOf, checkSlot, CollectionStore, damagedRows, type Damage } from '@fnn/server-common';
import {
  invalidInput,
  notFound,
  checkColumnCounts,
  packingParams,
  protocolState,
  type CollectionSettings,
  type Family,
  type Layout,
  type PackedColumns,
  type PackedRecordSource,
  type PackingParams,
  type PaperLayout,
  type PublicKey,
  type RecordSource,
} from '@fnn/shared';
import { GROUP_BLOBS, RECORD_BLOBS, SCHEMA } from './schema';

export interface CollectionShape {
  width: number;
  height: number;
  maxValue: number;
  /** What the collection stores for the protocols (always 'packed'; 'paper' for fnn and bf); fixed by the first upload. */
  layouts: Layout[];
  /**
   * The offset and fit rule its images were made with, fixed by the first
   * upload that names them; absent for a collection stored before they were
   * kept (its uploads and queries then take the flags as given).
   */
  settings?: CollectionSettings;
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
    if (!shape) return undefined;
    const offset = this.collection.fact('offset');
    const fit = this.collection.fact('fit') as CollectionSettings['fit'] | undefined;
    return {
      ...shape,
      layouts: (this.collection.fact('layouts') ?? '').split(',').filter(Boolean) as Layout[],
      ...(offset !== undefined && fit !== undefined ? { settings: { offset: Number(offset), fit } } : {}),
    };
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
        `UPDATE records SET encrypted_id = ?, sealed_image = ?, sum = ?, spread = ?, pixels = ?,
           encrypted_id_sha = ?, sealed_image_sha = ?, sum_sha = ?, spread_sha = ?, pixels_sha = ? WHERE lookup_tag = ?`,
      );
      const insert = this.db.prepare(
        `INSERT INTO records (encrypted_id, sealed_image, sum, spread, pixels,
           encrypted_id_sha, sealed_image_sha, sum_sha, spread_sha, pixels_sha, lookup_tag, grp, slot)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
        const blobs = [r.encryptedId, r.sealedImage, ...paper]; // in RECORD_BLOBS' order
        const sums = checksumsOf(RECORD_BLOBS, r.lookupTag, blobs);
        if (own) {
          update.run(...blobs, ...sums, r.lookupTag);
          replaced++;
        } else insert.run(...blobs, ...sums, r.lookupTag, change.group, r.slot);
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
  snapshot(): RecordSource & { encryptedId(candidate: number): Buffer; sealedImage(candidate: number): Buffer } {
    const shape = this.shape();
    if (shape && !shape.layouts.includes('paper'))
      throw protocolState("this collection was uploaded without the paper's per-pixel layout: query it with the fast protocol");
    const rows = this.db
      .prepare(
        `SELECT seq, lookup_tag, grp, slot, encrypted_id, encrypted_id_sha, sum, sum_sha, spread, spread_sha
         FROM records ORDER BY seq`,
      )
      .all() as (RecordPlace & Checked<'encrypted_id' | 'sum' | 'spread'> & { seq: number })[];
    const getPixels = this.db.prepare('SELECT pixels, pixels_sha FROM records WHERE seq = ?');
    const getSealed = this.db.prepare('SELECT sealed_image, sealed_image_sha FROM records WHERE seq = ?');
    const dimension = shape ? shape.width * shape.height : 0;
    const checked = this.recordBlob(rows);
    return {
      count: rows.length,
      dimension,
      // Two ciphertexts a record, hashed once per query: nothing beside the bound's own work.
      stats: async () =>
        rows.map((r, i) => ({ sum: this.fromBlob(checked(i, r, 'sum'))[0], spread: this.fromBlob(checked(i, r, 'spread'))[0] })),
      pixels: async (candidate) => {
        const row = getPixels.get(rows[candidate].seq) as Checked<'pixels'> | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return this.fromBlob(checked(candidate, row, 'pixels'));
      },
      encryptedId: (candidate) => checked(candidate, rows[candidate], 'encrypted_id'),
      sealedImage: (candidate) => {
        const row = getSealed.get(rows[candidate].seq) as Checked<'sealed_image'> | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return checked(candidate, row, 'sealed_image');
      },
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
    const members = (
      this.db
        .prepare('SELECT slot, lookup_tag, sealed_image, sealed_image_sha FROM records WHERE grp = ? ORDER BY slot')
        .all(group) as (Checked<'sealed_image'> & { slot: number; lookup_tag: Buffer })[]
    ).map((r) => ({
      slot: r.slot,
      lookupTag: r.lookup_tag,
      sealedImage: this.collection.verified(RECORD_BLOBS, r.lookup_tag, 'sealed_image', r.sealed_image, r.sealed_image_sha, () =>
        recordAt(undefined, group, r.slot),
      ),
    }));
    return { version: this.groupVersion(group), members };
  }

  /** A group's version; empty when the group is. */
  private groupVersion(group: number): Buffer {
    const row = this.db.prepare('SELECT version FROM packed_groups WHERE grp = ?').get(group) as { version: Buffer } | undefined;
    return row?.version ?? Buffer.alloc(0);
  }

  /**
   * Every record and group whose blobs do not match their checksums (records
   * in upload order, then groups by number): what `fnn check` reports. Reads
   * the whole file, one row at a time.
   */
  verify(): Damage[] {
    const damage: Damage[] = [];
    for (const { index, row, columns } of damagedRows(this.db, RECORD_BLOBS, 'seq', ['grp', 'slot']))
      damage.push({
        kind: 'record',
        group: row.grp as number,
        slot: row.slot as number,
        position: index + 1,
        lookupTag: row.lookup_tag as Buffer,
        columns,
      });
    for (const { row, columns } of damagedRows(this.db, GROUP_BLOBS, 'grp'))
      damage.push({ kind: 'group', group: row.grp as number, columns });
    return damage;
  }

  /** A record's blob as read with its checksum, checked; `candidate` (upload order) names it in a refusal. */
  private recordBlob(places: RecordPlace[]) {
    return <C extends RecordBlob>(candidate: number, row: Checked<C>, column: C): Buffer => {
      const { lookup_tag: tag, grp, slot } = places[candidate];
      const read = row as Record<string, Buffer | null>;
      return this.collection.verified(RECORD_BLOBS, tag, column, read[column], read[`${column}_sha`], () => recordAt(candidate, grp, slot));
    };
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
    const rows = this.db
      .prepare('SELECT lookup_tag, encrypted_id, encrypted_id_sha, grp, slot FROM records ORDER BY seq')
      .all() as (RecordPlace & Checked<'encrypted_id'>)[];
    const checked = this.recordBlob(rows);
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
    const getPacked = this.db.prepare(
      'SELECT pixels, pixels_sha, embedding, embedding_sha, coarse, coarse_sha, constants, constants_sha FROM packed_groups WHERE grp = ?',
    );
    const getSealed = this.db.prepare('SELECT sealed_image, sealed_image_sha FROM records WHERE lookup_tag = ?');
    return {
      params,
      count: rows.length,
      groups,
      collectionId: this.collectionId() ?? Buffer.alloc(0),
      // Checked and read synchronously, so no upload can slip in between.
      columns: async (group: number, family: Family) => {
        if (this.groupDigestNow(group, params.groupSize) !== digests.get(group))
          throw protocolState('a group changed during the query; run the query again');
        const row = getPacked.get(group) as Checked<'pixels' | 'embedding' | 'coarse' | 'constants'>;
        // Each column hashed whole on every read. Measured (node:crypto SHA-256, Node 20, one core of
        // this shared 2-core Xeon, 2026-12-02): a 256x256 pixel column at 2048 bits (65,536 x 512 bytes,
        // 32 MiB) ~70 ms, its 2048-coordinate embedding (1 MiB) ~2 ms; a fast query at n = 500 (39 groups'
        // bounds, 1-2 groups' distances) hashes ~0.2 s per server of a 36-45 s query (docs/BENCHMARKS.md).
        const blob = (column: 'pixels' | 'embedding' | 'coarse' | 'constants') =>
          this.collection.verified(GROUP_BLOBS, group, column, row[column], row[`${column}_sha`], () => `group ${group}`);
        const [distance, bound, coarse] = this.fromBlob(blob('constants'));
        // The columns as stored: the multi-exponentiation reads the bytes; only the family asked for is hashed.
        const width = this.key.cipherBytes;
        const column = { distance: 'pixels', bound: 'embedding', coarse: 'coarse' } as const;
        const constant = { distance, bound, coarse };
        return { columns: { bytes: blob(column[family]), width }, constant: constant[family] };
      },
      encryptedId: (candidate) => checked(candidate, rows[candidate], 'encrypted_id'),
      sealedImage: (candidate) => {
        const row = getSealed.get(rows[candidate].lookup_tag) as Checked<'sealed_image'> | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return checked(candidate, row, 'sealed_image');
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
      if (layouts !== undefined && shape.settings) {
        this.collection.setFact('offset', String(shape.settings.offset));
        this.collection.setFact('fit', shape.settings.fit);
      }
    } else if (shape.settings && current.settings && shape.settings.offset !== current.settings.offset) {
      // Records under two offsets would rank by the offset, not by the images: the distances would be shifted.
      throw invalidInput(
        `the collection was created with --offset ${current.settings.offset}; upload with --offset ${current.settings.offset}`,
      );
    } else if (shape.settings && current.settings && shape.settings.fit !== current.settings.fit) {
      throw invalidInput(`the collection was created with --fit ${current.settings.fit}; upload with --fit ${current.settings.fit}`);
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
    if (!this.groupVersion(change.group).equals(change.baseVersion))
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
    if (c.distanceConstant === undefined || c.boundConstant === undefined || c.coarseConstant === undefined)
      throw invalidInput(`group ${change.group}: packed columns without their constants`);
    const blobs = [
      this.toBlob(c.distance),
      this.toBlob(c.bound),
      this.toBlob(c.coarse),
      this.toBlob([c.distanceConstant, c.boundConstant, c.coarseConstant]),
    ]; // GROUP_BLOBS' order
    this.db
      .prepare(
        `INSERT INTO packed_groups (grp, version, pixels, embedding, coarse, constants, pixels_sha, embedding_sha, coarse_sha, constants_sha)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(grp) DO UPDATE SET version = excluded.version, pixels = excluded.pixels,
           embedding = excluded.embedding, coarse = excluded.coarse, constants = excluded.constants, pixels_sha = excluded.pixels_sha,
           embedding_sha = excluded.embedding_sha, coarse_sha = excluded.coarse_sha, constants_sha = excluded.constants_sha`,
      )
      .run(change.group, change.version, ...blobs, ...checksumsOf(GROUP_BLOBS, change.group, blobs));
  }

  private toBlob(ciphers: bigint[]): Buffer {
    return this.collection.toBlob(ciphers);
  }

  private fromBlob(blob: Buffer): bigint[] {
    return this.collection.fromBlob(blob);
  }
}

/** A record's blob columns (RECORD_BLOBS). */
type RecordBlob = 'encrypted_id' | 'sealed_image' | 'sum' | 'spread' | 'pixels';
/** Blob columns as read with their checksums. */
type Checked<C extends string> = { [K in C]: Buffer } & { [K in C as `${K}_sha`]: Buffer | null };
/** Where a record is, for naming it in a refusal. */
interface RecordPlace {
  lookup_tag: Buffer;
  grp: number;
  slot: number;
}

/** A record as a refusal names it: its position in upload order (when known) and its place; never its ID. */
const recordAt = (candidate: number | undefined, group: number, slot: number): string =>
  candidate === undefined
    ? `the record in group ${group}, slot ${slot}`
    : `record ${candidate + 1} in upload order (group ${group}, slot ${slot})`;
