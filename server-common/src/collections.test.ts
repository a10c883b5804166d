import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COLLECTION_METADATA, isFnnError } from '@fnn/shared';
import { collectionField, collectionFile, collectionOf, Collections } from './collections';

// A daemon's collections as files: the default one at --db, the others beside
// it, found again at start; created by a first change within the bound, and
// NOT_FOUND otherwise. The stores here are stand-ins that make their file, so
// what is proved is the registry's (the real stores over it: collections.e2e.test.ts).

class FileStore {
  closed = false;
  constructor(readonly path: string) {
    if (!existsSync(path)) writeFileSync(path, '');
  }
  close() {
    this.closed = true;
  }
}

let dir: string;
let db: string;
const open = (max?: number) =>
  new Collections<FileStore>({
    dbPath: db,
    open: (path) => new FileStore(path),
    max,
    daemon: 'C1',
    hint: () => '`fnn collections` lists those it has',
  });

/** The kind and message of what `fn` throws. */
function refusal(fn: () => unknown): { kind: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (isFnnError(error)) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error('expected a refusal');
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fnn-collections-'));
  db = join(dir, 'c1.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('Collections', () => {
  it('the default collection is --db itself, so a daemon of one collection opens the same file and makes no directory', () => {
    const c = open();
    expect(c.defaultStore.path).toBe(db);
    expect(c.names()).toEqual(['default']);
    expect(readdirSync(dir)).toEqual(['c1.db']);
    c.close();
    expect(c.get('default')).toBeUndefined();
  });

  it('creates a collection in <db>.collections/, and opens every one there again at the next start', () => {
    const c = open();
    expect(c.create('mr-brain').path).toBe(join(`${db}.collections`, 'mr-brain.db'));
    c.create('ct.chest_2');
    expect(c.create('mr-brain')).toBe(c.get('mr-brain'));
    c.close();
    // A WAL file, a stray file and a name outside the rule are not collections.
    for (const f of ['mr-brain.db-wal', 'notes.txt', 'Bad Name.db', 'default.db']) writeFileSync(join(`${db}.collections`, f), '');
    const again = open();
    expect(again.names()).toEqual(['default', 'ct.chest_2', 'mr-brain']);
    expect(again.files()).toEqual([db, collectionFile(db, 'ct.chest_2'), collectionFile(db, 'mr-brain')]);
    again.close();
  });

  it('an unknown collection is NOT_FOUND naming it; nothing is created by asking', () => {
    const c = open();
    expect(refusal(() => c.find('xr-hand'))).toEqual({
      kind: 'not-found',
      message: 'C1 has no collection "xr-hand"; `fnn collections` lists those it has',
    });
    expect(existsSync(`${db}.collections`)).toBe(false);
    c.close();
  });

  it('refuses the collection beyond the bound with RESOURCE_EXHAUSTED, creating nothing; the default counts', () => {
    const c = open(2);
    c.create('ct');
    expect(refusal(() => c.create('mr'))).toEqual({
      kind: 'resource-exhausted',
      message:
        'C1 holds 2 collections, at most 2: collection "mr" is not created (raise --max-collections, or upload into an existing one)',
    });
    expect(readdirSync(`${db}.collections`)).toEqual(['ct.db']);
    expect(c.create('ct')).toBe(c.get('ct')); // an existing one is not a new one
    c.close();
  });

  it('refuses a name outside the rule before any file is touched', () => {
    const c = open();
    for (const name of ['../c2', 'CT', '', '.hidden', 'a/b', 'x'.repeat(65)])
      expect(refusal(() => c.create(name)).kind, JSON.stringify(name)).toBe('invalid-input');
    expect(existsSync(`${db}.collections`)).toBe(false);
    c.close();
  });
});

describe("a call's collection", () => {
  const metadata = (...names: string[]) => {
    const m = new Metadata();
    for (const n of names) m.add(COLLECTION_METADATA, n);
    return m;
  };

  it('is the default without the metadata, the name with it, and refused when bad or given twice', () => {
    expect(collectionOf(metadata())).toBe('default');
    expect(collectionOf(metadata('ct-chest'))).toBe('ct-chest');
    expect(() => collectionOf(metadata('../etc'))).toThrow(/collection name "..\/etc" is not allowed/);
    expect(() => collectionOf(metadata('a', 'b'))).toThrow('a call names one collection, not 2');
  });

  it('is on the log fields only when it is a valid name', () => {
    expect(collectionField(metadata('ct-chest'))).toEqual({ collection: 'ct-chest' });
    expect(collectionField(metadata())).toEqual({});
    expect(collectionField(metadata('Patient 7'))).toEqual({});
  });
});
