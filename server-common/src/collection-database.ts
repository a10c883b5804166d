import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { matches, type ChecksummedTable } from './checksums';
import {
  blobToCiphers,
  ciphersToBlob,
  FnnError,
  groupDigest,
  invalidInput,
  packingParams,
  protocolState,
  type PackingParams,
  type PublicKey,
} from '@fnn/shared';

// A collection's SQLite file as both daemons open it: C1's records under C2's
// key, C2's replica under C1's key. What they share is here: the pragmas, the
// facts table (key, schema version, image shape), the key binding, the group
// digest. Each store keeps its own tables and what it does with them.

/** What a daemon's store declares about its file. */
export interface CollectionSchema {
  /** Kept in the facts table; a file of another version is refused unless `migrations` lead from it to this one. */
  version: number;
  /** The store's own tables (`CREATE TABLE IF NOT EXISTS ...`), created once the version is right. */
  tables: string;
  /** `migrations[n]` turns a file of version n into one of version n + 1; run in the opening transaction. */
  migrations?: Record<number, (db: Database.Database) => void>;
  /**
   * The tables holding each group's version (grp, version) and its members
   * (grp, slot, lookup_tag), for the group digest; every record is a member.
   */
  groups: { versions: string; members: string };
  /** How refusals name things, e.g. C1: daemon 'C1', file 'database', key 'Paillier key', images 'the collection'. */
  names: { daemon: string; file: string; key: string; images: string; remedy: string };
}

/** A collection's image shape, fixed by its first upload and forgotten when it is empty again. */
export interface ImageShape {
  width: number;
  height: number;
  maxValue: number;
}

/** Facts that outlive an empty collection: the file stays bound to its key, version and collection. */
const BINDING_FACTS = ['key', 'schema_version', 'collection_id'];

/** A collection id: 16 random bytes fixed by C1, bound by C2 at its first replica change. */
export const COLLECTION_ID_BYTES = 16;

const FACTS_TABLE = `
-- One row per fact about the collection (image size, pixel depth, key, schema version).
CREATE TABLE IF NOT EXISTS collection (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
`;

/**
 * A write SQLite refused with SQLITE_FULL (the disk, or the file's page
 * limit, is full): the caller gets RESOURCE_EXHAUSTED naming the file, the
 * transaction is rolled back, and the handlers log it as an error line for the
 * operator (handlers.ts), who can free space and retry.
 */
export class DiskFullError extends FnnError {
  constructor(
    readonly path: string,
    names: CollectionSchema['names'],
  ) {
    super('resource-exhausted', `${names.daemon}'s disk is full (${names.file} at ${path})`);
    this.name = 'DiskFullError';
  }
}

/**
 * A blob read from the file that does not match its checksum (damage at
 * rest): the caller gets DATA_LOSS naming where (a record's position or a
 * group, never an ID or a byte), nothing is answered from it, and the handlers
 * log it as an error line naming the file (handlers.ts).
 */
export class DataLossError extends FnnError {
  constructor(
    readonly path: string,
    /** e.g. "record 7 in upload order (group 1, slot 2)", "group 3". */
    readonly where: string,
    readonly column: string,
    names: CollectionSchema['names'],
  ) {
    super('data-loss', `${names.daemon}'s ${names.file} is damaged at ${where}: column ${column} does not match its checksum`);
    this.name = 'DataLossError';
  }
}

export class CollectionDatabase {
  /** The open file; the store runs its own statements on it. */
  readonly db: Database.Database;

  /** Opens (or creates) the file at `path` for ciphertexts under `key`; refused if it is bound to another key or version. */
  constructor(
    readonly path: string,
    readonly key: PublicKey,
    private readonly schema: CollectionSchema,
  ) {
    this.db = new Database(path);
    try {
      this.db.pragma('journal_mode = WAL'); // one transaction per change: a crash leaves each change whole or absent
      this.db.pragma('synchronous = FULL');
      this.db.pragma('secure_delete = ON'); // deleted ciphertexts are overwritten, not just unlinked
      this.db.exec(FACTS_TABLE);
      this.transaction(() => {
        this.bindKey();
        this.bindVersion();
        this.db.exec(schema.tables);
      });
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  /** `fn` as one write transaction, taken at once (BEGIN IMMEDIATE): concurrent writers wait instead of failing late. */
  transaction<T>(fn: () => T): T {
    // better-sqlite3 rolls the transaction back before the error reaches us: a full disk leaves nothing half-stored.
    return this.diskFullAs(() => this.db.transaction(fn).immediate());
  }

  /** Empties the WAL into the file, so that deleted or replaced ciphertexts leave the WAL too. */
  checkpoint(): void {
    this.diskFullAs(() => this.db.pragma('wal_checkpoint(TRUNCATE)'));
  }

  /**
   * Caps the file at `pages` pages (SQLite's max_page_count, for this
   * connection only): writes beyond fail as on a full disk. For tests of a full disk.
   */
  limitPages(pages: number): void {
    this.db.pragma(`max_page_count = ${Math.floor(pages)}`);
  }

  /** `fn`, with SQLITE_FULL turned into the DiskFullError that names this file; any other error as it is. */
  private diskFullAs<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code === 'SQLITE_FULL') throw new DiskFullError(this.path, this.schema.names);
      throw error;
    }
  }

  /**
   * A blob as read with its checksum (checksums.ts), once they match;
   * DataLossError naming `where()` when they do not. Both NULL: a blob the row does not have.
   */
  verified(
    spec: ChecksummedTable,
    key: Buffer | number,
    column: string,
    blob: Buffer | null,
    sha: Buffer | null,
    where: () => string,
  ): Buffer {
    if (blob === null || !matches(spec, key, column, blob, sha)) throw new DataLossError(this.path, where(), column, this.schema.names);
    return blob;
  }

  integrityCheck(): string {
    return (this.db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
  }

  /** The records in the collection: the members of its groups. */
  get count(): number {
    return this.rowCount(this.schema.groups.members);
  }

  /** Rows of one of the store's own tables (a name from its schema, never from a caller). */
  rowCount(table: string): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  }

  fact(name: string): string | undefined {
    return (this.db.prepare('SELECT value FROM collection WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  setFact(name: string, value: string): void {
    this.db
      .prepare('INSERT INTO collection (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value')
      .run(name, value);
  }

  /** An empty collection forgets its shape (and any other fact of its uploads); key and version stay. */
  clearFacts(): void {
    this.db.prepare(`DELETE FROM collection WHERE name NOT IN (${BINDING_FACTS.map(() => '?').join(', ')})`).run(...BINDING_FACTS);
  }

  shape(): ImageShape | undefined {
    const width = this.fact('width');
    if (width === undefined) return undefined;
    return { width: Number(width), height: Number(this.fact('height')), maxValue: Number(this.fact('max_value')) };
  }

  /**
   * Refuses a shape other than the collection's. An empty collection takes
   * `shape` as its own when `fix` (an upload), and stays empty when not (a question).
   */
  checkShape(shape: ImageShape, fix: boolean): void {
    const current = this.shape();
    const images = this.schema.names.images;
    if (current === undefined) {
      if (!fix) return;
      this.setFact('width', String(shape.width));
      this.setFact('height', String(shape.height));
      this.setFact('max_value', String(shape.maxValue));
    } else if (current.width !== shape.width || current.height !== shape.height) {
      throw invalidInput(`image is ${shape.width}x${shape.height}, ${images}'s images are ${current.width}x${current.height}`);
    } else if (current.maxValue !== shape.maxValue) {
      throw invalidInput(`image pixel depth ${shape.maxValue} differs from ${images}'s ${current.maxValue}`);
    }
  }

  /** The collection's packing, once its shape is known. */
  params(): PackingParams | undefined {
    const shape = this.shape();
    return shape ? packingParams(this.key.bits, shape.width, shape.height, shape.maxValue) : undefined;
  }

  /**
   * The digest of a group as it is now (its version and its members' tags by
   * slot); undefined if it has no version. `tables`: another pair of the
   * store's own tables of the same columns (C2's pending changes).
   */
  groupDigest(group: number, groupSize: number, tables: CollectionSchema['groups'] = this.schema.groups): string | undefined {
    const { versions, members } = tables;
    const row = this.db.prepare(`SELECT version FROM ${versions} WHERE grp = ?`).get(group) as { version: Buffer } | undefined;
    if (!row) return undefined;
    const tags: (Buffer | null)[] = new Array(groupSize).fill(null);
    for (const m of this.db.prepare(`SELECT slot, lookup_tag FROM ${members} WHERE grp = ?`).all(group) as {
      slot: number;
      lookup_tag: Buffer;
    }[])
      tags[m.slot] = m.lookup_tag;
    return groupDigest(row.version, tags);
  }

  /** Ciphertexts under the file's key, fixed-width and back to back. */
  toBlob(ciphers: bigint[]): Buffer {
    return ciphersToBlob(ciphers, this.key.cipherBytes);
  }

  fromBlob(blob: Buffer): bigint[] {
    return blobToCiphers(blob, this.key.cipherBytes);
  }

  /** The collection this file belongs to, once fixed (C1) or bound (C2). */
  collectionId(): Buffer | undefined {
    const hex = this.fact('collection_id');
    return hex === undefined ? undefined : Buffer.from(hex, 'hex');
  }

  /** C1's id, fixed now if the collection has none yet: 16 random bytes, kept for the file's life. */
  fixCollectionId(): Buffer {
    return this.transaction(() => {
      const id = this.collectionId();
      if (id) return id;
      const fresh = randomBytes(COLLECTION_ID_BYTES);
      this.setFact('collection_id', fresh.toString('hex'));
      return fresh;
    });
  }

  /**
   * Refuses a change or session of another collection (FAILED_PRECONDITION,
   * nothing changed); `bind`: a file without an id takes this one (C2's first
   * replica change). Call inside the change's transaction.
   */
  checkCollectionId(id: Uint8Array, bind: boolean): void {
    const current = this.collectionId();
    if (current === undefined) {
      if (!bind) return;
      if (id.length !== COLLECTION_ID_BYTES) throw invalidInput(`a collection id is ${COLLECTION_ID_BYTES} bytes, not ${id.length}`);
      this.setFact('collection_id', Buffer.from(id).toString('hex'));
    } else if (!current.equals(id)) {
      throw protocolState(`${this.schema.names.daemon}'s ${this.schema.names.file} belongs to another collection`);
    }
  }

  /** A file belongs to one Paillier key: refuse to mix ciphertexts of two keys. */
  private bindKey(): void {
    const stored = this.fact('key');
    if (stored === undefined) this.setFact('key', this.key.fingerprint());
    else if (stored !== this.key.fingerprint())
      throw invalidInput(`this ${this.schema.names.file} holds records encrypted under another ${this.schema.names.key}`);
  }

  /** A file without a version is new (or predates versions) and takes this one; an older one is migrated if it can be. */
  private bindVersion(): void {
    const { version, migrations = {}, names } = this.schema;
    const stored = this.fact('schema_version');
    if (stored === undefined) return this.setFact('schema_version', String(version));
    const refused = () => invalidInput(`${names.file} schema ${stored}, this ${names.daemon} needs ${version}; ${names.remedy}`);
    let at = Number(stored);
    if (!Number.isInteger(at) || at > version) throw refused();
    for (; at < version; at++) {
      const migrate = migrations[at];
      if (!migrate) throw refused();
      migrate(this.db);
    }
    this.setFact('schema_version', String(version));
  }
}

/**
 * What every daemon's store is: its collection's file, open under one key,
 * with its count and packing. The store adds its own tables' reads and writes.
 */
export abstract class CollectionStore {
  protected readonly collection: CollectionDatabase;
  /** The open file, for the store's own statements. */
  protected readonly db: Database.Database;

  constructor(
    path: string,
    protected readonly key: PublicKey,
    schema: CollectionSchema,
  ) {
    this.collection = new CollectionDatabase(path, key, schema);
    this.db = this.collection.db;
  }

  close(): void {
    this.collection.close();
  }

  get count(): number {
    return this.collection.count;
  }

  /** The collection's packing, once its shape is known. */
  params(): PackingParams | undefined {
    return this.collection.params();
  }

  integrityCheck(): string {
    return this.collection.integrityCheck();
  }

  /** See CollectionDatabase.limitPages: a full disk on purpose, for tests. */
  limitPages(pages: number): void {
    this.collection.limitPages(pages);
  }
}

/** A member's slot in a group of `groupSize`; `what` names the member in the refusal. */
export function checkSlot(slot: number, groupSize: number, what?: string): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= groupSize)
    throw invalidInput(`${what ? `${what}: ` : ''}slot ${slot} outside a group of ${groupSize}`);
}
