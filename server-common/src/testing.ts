import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import {
  blobToCiphers,
  cipherToBytes,
  FnnError,
  generateKeyPair,
  generateSymmetricKey,
  RecordKey,
  type FixedWidthValues,
  type FnnErrorKind,
  type Logger,
  type PublicKey,
  type SecretKey,
} from '@fnn/shared';

// Test support for C1's and C2's SQLite stores: what a database keeps on disk,
// and the refusals the tests expect. Imported by the tests as
// '@fnn/server-common/testing' (not from the package's index: no daemon needs it).

/** A stored column (the bytes a snapshot hands to the multi-exponentiation) as ciphertexts, to decrypt or compare. */
export const ciphersOf = (column: FixedWidthValues): bigint[] => blobToCiphers(column.bytes, column.width);

/** Every byte SQLite keeps on disk for the database at `path`: the main file, the WAL and any other side file. */
export function databaseBytes(path: string): Buffer {
  const dir = dirname(path);
  const name = basename(path);
  const files = readdirSync(dir).filter((f) => f === name || f.startsWith(`${name}-`));
  if (!files.includes(name)) throw new Error(`the database file ${path} does not exist`);
  return Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
}

/**
 * 32-byte pieces of every ciphertext of a vector: a long blob spans SQLite
 * overflow pages, so one piece may be cut by a page header; the vector is on
 * disk if some piece is, and gone only if none is.
 */
export const cipherPieces = (cs: bigint[], cipherBytes: number): Buffer[] =>
  cs.map((c) => Buffer.from(cipherToBytes(c, cipherBytes)).subarray(8, 40));

/** Whether any of `probes` occurs in `disk`. */
export const onDisk = (disk: Buffer, probes: Buffer | Buffer[]): boolean =>
  (Array.isArray(probes) ? probes : [probes]).some((b) => disk.includes(b));

/** Runs fn, which must throw; returns what it threw. */
export function thrown(fn: () => unknown, what: string): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what} was accepted, but it must be refused`);
}

/** Fails unless `error` is an FnnError of `kind` (the gRPC status it maps to); `what` names the case. */
export function expectFnnError(error: unknown, kind: FnnErrorKind, what: string): void {
  if (!(error instanceof FnnError)) throw new Error(`${what}: expected an FnnError, got ${String(error)}`);
  if (error.kind !== kind) throw new Error(`${what}: wrong error kind ${error.kind}, expected ${kind} (${error.message})`);
}

/** Awaits promise, which must reject; returns its reason. */
export async function rejected(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded, but it must fail`);
}

/** A store test's keys: the key its columns are under (with the secret, to look inside them), another key, and a record key. */
export interface StoreTestKeys {
  key: PublicKey;
  secret: SecretKey;
  otherKey: PublicKey;
  recordKey: RecordKey;
}

/** Fresh 512-bit keys for a store test (small: the stores check sizes and bytes, not security). */
export async function storeTestKeys(): Promise<StoreTestKeys> {
  const { publicKey: key, secretKey: secret } = await generateKeyPair(512);
  const { publicKey: otherKey } = await generateKeyPair(512);
  return { key, secret, otherKey, recordKey: new RecordKey(generateSymmetricKey()) };
}

/**
 * The database files of one test file, each in a folder of its own (so that
 * its -wal and -shm files are easy to find) under one temporary root.
 * `cleanUp` (in afterAll) closes every store still open and removes the root.
 */
export class ScratchDatabases {
  private root?: string;
  private count = 0;
  private readonly open: { close(): void }[] = [];

  constructor(private readonly prefix: string) {}

  /** A path named `name` in a new folder. */
  path(name: string): string {
    this.root ??= mkdtempSync(join(tmpdir(), this.prefix));
    return join(mkdtempSync(join(this.root, `db${++this.count}-`)), name);
  }

  /** `store`, to be closed by cleanUp if the test does not close it. */
  track<T extends { close(): void }>(store: T): T {
    this.open.push(store);
    return store;
  }

  cleanUp(): void {
    for (const s of this.open.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed by the test
      }
    }
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = undefined;
  }
}

/** One change of groupChangeSteps: set `group` to `members`, having `added` or `removed` these records. */
export interface GroupChangeStep<R> {
  what: string;
  group: number;
  members: R[];
  added: R[];
  removed: R[];
  /** False for the last: a change that reached C1 only, after which the digests of C1 and C2 must differ. */
  reachesC2: boolean;
}

/**
 * The changes C1's and C2's store tests both apply, each checking its digests
 * against the owner's: so C1 and C2 give the same digests for the same changes
 * without either test opening the other's store. Slots out of upload order, a
 * free slot in group 0, a group 1 with a hole first, a replacement (same tag,
 * new image), a delete, a group emptied, then a change C2 never gets.
 * `record(id, slot)` makes a record (a new image at each call).
 */
export function groupChangeSteps<R>(record: (id: string, slot: number) => R): GroupChangeStep<R>[] {
  const [r0, r1, r2, r3] = [record('r0', 2), record('r1', 0), record('r2', 1), record('r3', 2)];
  const newR0 = record('r0', 2);
  const late = record('late', 1);
  const step = (what: string, group: number, members: R[], added: R[], removed: R[] = [], reachesC2 = true) => ({
    what,
    group,
    members,
    added,
    removed,
    reachesC2,
  });
  return [
    step('after the first upload', 0, [r0, r1], [r0, r1]),
    step('after the uploads', 1, [r2, r3], [r2, r3]),
    step('after a replacement on both', 0, [newR0, r1], [newR0]),
    step('after a delete on both', 0, [newR0], [], [r1]),
    step('after a group was emptied on both', 1, [], [], [r2, r3]),
    step('after a change that reached C1 only', 0, [newR0, late], [late], [], false),
  ];
}

/** One line a daemon logged. */
export interface LoggedLine {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that keeps every line, to check what a daemon logs (and that no secret is among it). */
export function recordingLogger(): Logger & {
  lines: LoggedLine[];
  /** The first line (logged already or later) that `matches`: to wait on a daemon's log instead of sleeping. */
  line(matches: (l: LoggedLine) => boolean): Promise<LoggedLine>;
} {
  const lines: LoggedLine[] = [];
  const waiting: { matches: (l: LoggedLine) => boolean; resolve: (l: LoggedLine) => void }[] = [];
  const at =
    (level: LoggedLine['level']) =>
    (fields: object, message: string): void => {
      const l = { level, fields: fields as Record<string, unknown>, message };
      lines.push(l);
      for (const w of waiting.filter((w) => w.matches(l))) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(l);
      }
    };
  const line = (matches: (l: LoggedLine) => boolean) =>
    new Promise<LoggedLine>((resolve) => {
      const already = lines.find(matches);
      if (already) resolve(already);
      else waiting.push({ matches, resolve });
    });
  const logger = { lines, line, info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}
export * from './testing-wire';
