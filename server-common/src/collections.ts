import { mkdirSync, readdirSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';
import {
  checkCollectionName,
  COLLECTION_METADATA,
  COLLECTION_NAME,
  DEFAULT_COLLECTION,
  invalidInput,
  notFound,
  resourceExhausted,
} from '@fnn/shared';

// Several collections per deployment (docs/ARCHITECTURE.md, "Collections"):
// each is its own SQLite file, so each keeps its own size, settings, layouts,
// packing, collection id and replica, and a file of today opens unchanged as
// the collection "default". A call names its collection in the gRPC metadata
// `fnn-collection` (shared/src/wire/collection-names.ts).

/** Collections one daemon holds: each is an open SQLite file (descriptors, page cache). */
export const DEFAULT_MAX_COLLECTIONS = 32;

/** The collection a call names (checked), or the default one. */
export function collectionOf(metadata: Metadata): string {
  const given = metadata.get(COLLECTION_METADATA);
  if (given.length === 0) return DEFAULT_COLLECTION;
  if (given.length > 1) throw invalidInput(`a call names one collection, not ${given.length}`);
  return checkCollectionName(String(given[0]));
}

/** The collection a call named, for its log line, audit entry and metrics (a name, not a secret); nothing for a bad name or none. */
export function collectionField(metadata: Metadata): { collection?: string } {
  const named = metadata.get(COLLECTION_METADATA);
  return named.length === 1 && COLLECTION_NAME.test(String(named[0])) ? { collection: String(named[0]) } : {};
}

/** Where a collection's file is: the default's is `dbPath`; another's beside it, in `<dbPath>.collections/`. */
export function collectionFile(dbPath: string, name: string): string {
  return name === DEFAULT_COLLECTION ? dbPath : `${collectionDirectory(dbPath)}/${name}.db`;
}

const collectionDirectory = (dbPath: string) => `${dbPath}.collections`;

/** What a daemon's store is to the collections: it closes. */
export interface ClosableStore {
  close(): void;
}

export interface CollectionsOptions<S> {
  /** The default collection's file (`--db`); the others are in `<dbPath>.collections/`. */
  dbPath: string;
  /** Opens (or creates) one collection's store at its file. */
  open: (path: string, name: string) => S;
  /** The default collection's store, already open (a test's); default: opened here. */
  defaultStore?: S;
  /** At most this many collections, the default one included (default DEFAULT_MAX_COLLECTIONS). */
  max?: number;
  /** How refusals name the daemon, e.g. 'C1'. */
  daemon: string;
  /** What an unknown collection's NOT_FOUND tells the caller to do, given its name. */
  hint?: (name: string) => string;
}

/**
 * A daemon's collections: the default one, opened at start as before, and
 * every other file in `<dbPath>.collections/`, opened at start too (a file
 * that does not open stops the daemon, as the default's does). A collection
 * is created by its first change (the owner's first upload); anything else
 * naming a collection that does not exist is NOT_FOUND.
 */
export class Collections<S extends ClosableStore> {
  private readonly stores = new Map<string, S>();
  readonly max: number;

  constructor(private readonly options: CollectionsOptions<S>) {
    this.max = options.max ?? DEFAULT_MAX_COLLECTIONS;
    if (!Number.isInteger(this.max) || this.max < 1) throw invalidInput('at most 0 collections: a daemon holds at least the default one');
    try {
      this.stores.set(DEFAULT_COLLECTION, options.defaultStore ?? options.open(options.dbPath, DEFAULT_COLLECTION));
      for (const name of existingCollections(options.dbPath))
        this.stores.set(name, options.open(collectionFile(options.dbPath, name), name));
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** The default collection's store: what a daemon of one collection held. */
  get defaultStore(): S {
    return this.stores.get(DEFAULT_COLLECTION)!;
  }

  /** The collection's store, if it exists. */
  get(name: string): S | undefined {
    return this.stores.get(name);
  }

  /** The collection's store, or NOT_FOUND naming it (a name is not secret; record IDs are). */
  find(name: string): S {
    const store = this.stores.get(name);
    if (!store) {
      const hint = this.options.hint?.(name);
      throw notFound(`${this.options.daemon} has no collection "${name}"${hint ? `; ${hint}` : ''}`);
    }
    return store;
  }

  /** The collection's store, created now if it does not exist (within the bound: RESOURCE_EXHAUSTED beyond it). */
  create(name: string): S {
    const existing = this.stores.get(name);
    if (existing) return existing;
    checkCollectionName(name);
    if (this.stores.size >= this.max)
      throw resourceExhausted(
        `${this.options.daemon} holds ${this.stores.size} collections, at most ${this.max}: collection "${name}" is not created (raise --max-collections, or upload into an existing one)`,
      );
    mkdirSync(collectionDirectory(this.options.dbPath), { recursive: true, mode: 0o700 });
    const store = this.options.open(collectionFile(this.options.dbPath, name), name);
    this.stores.set(name, store);
    return store;
  }

  /** Every collection's name: "default" first, then by name. */
  names(): string[] {
    return [DEFAULT_COLLECTION, ...[...this.stores.keys()].filter((n) => n !== DEFAULT_COLLECTION).sort()];
  }

  /** Every collection with its store, in names() order. */
  entries(): [string, S][] {
    return this.names().map((name) => [name, this.stores.get(name)!]);
  }

  /** Every collection's file, for the metrics' database size. */
  files(): string[] {
    return this.names().map((name) => collectionFile(this.options.dbPath, name));
  }

  /** The records of every collection (the daemon's listening line). */
  count(counted: (store: S) => number): number {
    return [...this.stores.values()].reduce((sum, store) => sum + counted(store), 0);
  }

  close(): void {
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
  }
}

/** The names of the collections other than the default that have a file in `<dbPath>.collections/`. */
function existingCollections(dbPath: string): string[] {
  let files: string[];
  try {
    files = readdirSync(collectionDirectory(dbPath));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return files
    .filter((f) => f.endsWith('.db'))
    .map((f) => f.slice(0, -'.db'.length))
    .filter((name) => COLLECTION_NAME.test(name) && name !== DEFAULT_COLLECTION)
    .sort();
}
