import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FnnError, generateKeyPair, groupDigest, packingParams, type PublicKey } from '@fnn/shared';
import { checkSlot, CollectionDatabase, type CollectionSchema } from './collection-database';
import { ScratchDatabases, thrown } from './testing';

// CollectionDatabase against real SQLite files: the pragmas, the key and
// schema version a file is bound to (and the refusals when they differ),
// migrations, the facts and the image shape, counts and the group digest.

let key: PublicKey;
let otherKey: PublicKey;
const scratch = new ScratchDatabases('fnn-collection-db-test-');

beforeAll(async () => {
  ({ publicKey: key } = await generateKeyPair(512));
  ({ publicKey: otherKey } = await generateKeyPair(512));
});

afterAll(() => scratch.cleanUp());

const TABLES = `
CREATE TABLE IF NOT EXISTS versions (grp INTEGER PRIMARY KEY, version BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS members (grp INTEGER NOT NULL, slot INTEGER NOT NULL, lookup_tag BLOB NOT NULL, PRIMARY KEY (grp, slot)) STRICT;
`;

const schema = (version: number, extra: Partial<CollectionSchema> = {}): CollectionSchema => ({
  version,
  tables: TABLES,
  groups: { versions: 'versions', members: 'members' },
  names: { daemon: 'C9', file: 'store', key: 'key of C9', images: 'the test collection', remedy: 'start a new store' },
  ...extra,
});

function openAt(path = scratch.path('t.db'), k = key, s = schema(1)): CollectionDatabase {
  return scratch.track(new CollectionDatabase(path, k, s));
}

/** The facts as stored, read with a connection of its own. */
function factsOnDisk(path: string): Record<string, string> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT name, value FROM collection').all() as { name: string; value: string }[];
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  } finally {
    db.close();
  }
}

function setFactOnDisk(path: string, name: string, value: string): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    db.prepare('UPDATE collection SET value = ? WHERE name = ?').run(value, name);
  } finally {
    db.close();
  }
}

function expectRefused(error: unknown, kind: FnnError['kind'], message: RegExp, what: string): void {
  expect(error instanceof FnnError, `${what}: expected an FnnError, got ${String(error)}`).toBe(true);
  expect((error as FnnError).kind, `${what}: wrong error kind (${(error as Error).message})`).toBe(kind);
  expect((error as Error).message, `${what}: the refusal must say why`).toMatch(message);
}

describe('CollectionDatabase: opening', () => {
  it('sets WAL mode, full sync and secure delete on every connection', () => {
    const db = openAt();
    expect(db.db.pragma('journal_mode', { simple: true }), 'journal mode').toBe('wal');
    expect(db.db.pragma('synchronous', { simple: true }), 'synchronous = FULL').toBe(2);
    expect(db.db.pragma('secure_delete', { simple: true }), 'secure_delete = ON: deleted ciphertexts are overwritten').toBe(1);
  });

  it("binds a new file to its key's fingerprint and the schema's version, and creates the store's tables", () => {
    const path = scratch.path('t.db');
    const db = openAt(path);
    expect(factsOnDisk(path)).toEqual({ key: key.fingerprint(), schema_version: '1' });
    expect(db.rowCount('versions'), 'the schema tables exist').toBe(0);
    expect(db.rowCount('members')).toBe(0);
  });

  it('opens the same file twice at once: both connections see the same facts and rows', () => {
    const path = scratch.path('t.db');
    const first = openAt(path);
    const second = openAt(path);
    first.setFact('width', '7');
    first.db.prepare('INSERT INTO members (grp, slot, lookup_tag) VALUES (0, 0, ?)').run(Buffer.alloc(32, 1));
    expect(second.fact('width'), 'a fact written by one connection').toBe('7');
    expect(second.rowCount('members'), 'a row written by one connection').toBe(1);
    expect(second.count, 'the count of records').toBe(1);
    expect(second.fact('key')).toBe(key.fingerprint());
  });

  it('reopens a closed file under the same key with its facts', () => {
    const path = scratch.path('t.db');
    const first = openAt(path);
    first.setFact('width', '4');
    first.close();
    const again = openAt(path);
    expect(again.fact('width'), 'a fact survives reopening').toBe('4');
    expect(factsOnDisk(path).schema_version, 'the version is not rewritten').toBe('1');
  });

  it('refuses a file bound to another key with invalid-input, naming the file and whose key, and leaves it bound to its key', () => {
    const path = scratch.path('t.db');
    openAt(path).close();
    const error = thrown(() => openAt(path, otherKey), 'opening under another key');
    expectRefused(error, 'invalid-input', /^this store holds records encrypted under another key of C9$/, 'another key');
    expect(factsOnDisk(path).key, 'the refused open must not rebind the file').toBe(key.fingerprint());
    expect(openAt(path).fact('key'), 'the right key still opens it').toBe(key.fingerprint());
  });

  it('refuses a file of a newer schema version with a message naming both versions and the remedy', () => {
    const path = scratch.path('t.db');
    openAt(path, key, schema(3)).close();
    const error = thrown(() => openAt(path, key, schema(2)), 'opening a newer file');
    expectRefused(error, 'invalid-input', /^store schema 3, this C9 needs 2; start a new store$/, 'newer version');
    expect(factsOnDisk(path).schema_version, 'a refused open must not change the version').toBe('3');
  });

  it('refuses a file of an older schema version without a migration, and one whose version is not a number', () => {
    const path = scratch.path('t.db');
    openAt(path, key, schema(1)).close();
    expectRefused(
      thrown(() => openAt(path, key, schema(2)), 'an older file'),
      'invalid-input',
      /^store schema 1, this C9 needs 2; /,
      'older',
    );
    expect(factsOnDisk(path).schema_version).toBe('1');
    setFactOnDisk(path, 'schema_version', 'x');
    expectRefused(
      thrown(() => openAt(path, key, schema(1)), 'a file of version "x"'),
      'invalid-input',
      /^store schema x, this C9 needs 1; /,
      'not a number',
    );
  });

  it('migrates an older file step by step in the opening transaction, then creates the new tables', () => {
    const path = scratch.path('t.db');
    const v1 = openAt(path, key, schema(1));
    v1.db.prepare('INSERT INTO versions (grp, version) VALUES (5, ?)').run(Buffer.alloc(16, 9));
    v1.close();
    const ran: number[] = [];
    const migrations = {
      1: (db: Database.Database) => {
        ran.push(1);
        db.exec('ALTER TABLE versions ADD COLUMN note TEXT');
      },
      2: (db: Database.Database) => {
        ran.push(2);
        db.prepare("UPDATE versions SET note = 'moved'").run();
      },
    };
    const tables = `${TABLES} CREATE TABLE IF NOT EXISTS added (x INTEGER) STRICT;`;
    const v3 = openAt(path, key, schema(3, { migrations, tables }));
    expect(ran, 'each migration once, in order').toEqual([1, 2]);
    expect(v3.fact('schema_version')).toBe('3');
    expect(v3.db.prepare('SELECT note FROM versions WHERE grp = 5').get(), 'the migrated rows').toEqual({ note: 'moved' });
    expect(v3.rowCount('added'), "the new version's tables exist").toBe(0);
    v3.close();
    openAt(path, key, schema(3, { migrations, tables }));
    expect(ran, 'a migrated file is not migrated again').toEqual([1, 2]);
  });

  it('leaves the file as it was when a migration fails', () => {
    const path = scratch.path('t.db');
    openAt(path, key, schema(1)).close();
    const migrations = {
      1: (db: Database.Database) => db.exec('ALTER TABLE versions ADD COLUMN note TEXT'),
      2: () => {
        throw new Error('migration 2 failed');
      },
    };
    expect(() => openAt(path, key, schema(3, { migrations }))).toThrow(/migration 2 failed/);
    expect(factsOnDisk(path).schema_version, 'the version stays').toBe('1');
    const db = new Database(path, { readonly: true });
    const columns = (db.pragma('table_info(versions)') as { name: string }[]).map((c) => c.name);
    db.close();
    expect(columns, "the first migration's change is rolled back too").toEqual(['grp', 'version']);
  });

  it('refuses a file that is not a database', () => {
    const path = scratch.path('t.db');
    writeFileSync(path, Buffer.alloc(4096, 0x41));
    expect(() => openAt(path)).toThrow(/not a database/);
  });
});

describe('CollectionDatabase: facts, shape, counts, digest', () => {
  it('round-trips facts, overwrites them, and forgets all but the key and version when cleared', () => {
    const path = scratch.path('t.db');
    const db = openAt(path);
    expect(db.fact('width'), 'no such fact yet').toBeUndefined();
    db.setFact('width', '4');
    db.setFact('width', '5');
    db.setFact('layouts', 'packed,paper');
    expect(db.fact('width'), 'the last value set').toBe('5');
    expect(db.fact('layouts')).toBe('packed,paper');
    db.clearFacts();
    expect(factsOnDisk(path), 'an empty collection stays bound to its key and version').toEqual({
      key: key.fingerprint(),
      schema_version: '1',
    });
  });

  it('fixes the shape only when told, and then refuses another size or depth naming both', () => {
    const db = openAt();
    db.checkShape({ width: 4, height: 4, maxValue: 255 }, false);
    expect(db.shape(), 'asking fixes nothing').toBeUndefined();
    expect(db.params()).toBeUndefined();
    db.checkShape({ width: 4, height: 3, maxValue: 255 }, true);
    expect(db.shape()).toEqual({ width: 4, height: 3, maxValue: 255 });
    expect(db.params(), 'the packing of the fixed shape under the file key').toEqual(packingParams(key.bits, 4, 3, 255));
    db.checkShape({ width: 4, height: 3, maxValue: 255 }, true);
    db.checkShape({ width: 4, height: 3, maxValue: 255 }, false);
    expectRefused(
      thrown(() => db.checkShape({ width: 3, height: 4, maxValue: 255 }, true), 'another size'),
      'invalid-input',
      /^image is 3x4, the test collection's images are 4x3$/,
      'another size',
    );
    expectRefused(
      thrown(() => db.checkShape({ width: 4, height: 3, maxValue: 65535 }, false), 'another depth'),
      'invalid-input',
      /^image pixel depth 65535 differs from the test collection's 255$/,
      'another depth',
    );
    expect(db.shape(), 'a refused shape changes nothing').toEqual({ width: 4, height: 3, maxValue: 255 });
  });

  it('rolls back facts set in a transaction that fails', () => {
    const db = openAt();
    expect(() =>
      db.transaction(() => {
        db.checkShape({ width: 2, height: 2, maxValue: 255 }, true);
        throw new Error('later step failed');
      }),
    ).toThrow(/later step failed/);
    expect(db.shape(), 'nothing of a failed transaction stays').toBeUndefined();
  });

  it("gives a group's digest from its version and its members' tags by slot, and none for a group without a version", () => {
    const db = openAt();
    const version = Buffer.alloc(16, 3);
    const [a, b] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    expect(db.groupDigest(0, 4), 'no version: no digest').toBeUndefined();
    db.db.prepare('INSERT INTO versions (grp, version) VALUES (0, ?)').run(version);
    expect(db.groupDigest(0, 4), 'a version and no members').toBe(groupDigest(version, [null, null, null, null]));
    const member = db.db.prepare('INSERT INTO members (grp, slot, lookup_tag) VALUES (?, ?, ?)');
    member.run(0, 2, a);
    member.run(0, 0, b);
    member.run(1, 1, a); // another group's member
    expect(db.groupDigest(0, 4), 'tags in slot order, free slots null').toBe(groupDigest(version, [b, null, a, null]));
    expect(db.groupDigest(0, 4)).not.toBe(groupDigest(version, [a, null, b, null]));
    expect(db.rowCount('members')).toBe(3);
  });

  it('round-trips ciphertexts through fixed-width blobs of the file key', () => {
    const db = openAt();
    const ciphers = [key.encrypt(0n), key.encrypt(7n), key.encrypt(123456789n)];
    const blob = db.toBlob(ciphers);
    expect(blob.length).toBe(3 * key.cipherBytes);
    expect(db.fromBlob(blob)).toEqual(ciphers);
  });
});

describe('checkSlot', () => {
  it('accepts 0..groupSize-1 and refuses anything else with invalid-input, naming the member', () => {
    checkSlot(0, 3);
    checkSlot(2, 3);
    for (const slot of [-1, 3, 1.5, Number.NaN])
      expectRefused(
        thrown(() => checkSlot(slot, 3, 'record 2'), `slot ${slot}`),
        'invalid-input',
        /^record 2: slot .* outside a group of 3$/,
        `slot ${slot}`,
      );
    expectRefused(
      thrown(() => checkSlot(3, 3), 'slot 3'),
      'invalid-input',
      /^slot 3 outside a group of 3$/,
      'unnamed',
    );
  });
});
