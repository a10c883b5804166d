import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { CallRecord } from '../wire/access-control';

// The audit trail's entries and their hash chain: what one entry holds, how
// it is hashed, and the walk that finds the first entry that does not hold.
// Both daemons write entries (audit-file.ts); `fnn audit --verify` walks the
// lines a daemon sends, so a daemon cannot vouch for its own file.

/** The `prev` of the first entry: there is no line before it. */
export const GENESIS = '0'.repeat(64);

/** The rpc of the entry a daemon writes when it finds lines that are not entries (a torn write) before its own. */
export const AUDIT_RESUMED = 'AuditResumed';

/** Who called: the certificate's public names, or why there is none. */
export type AuditWho =
  | { subject: string; role: string; serial: string }
  /** A daemon run with --insecure: no certificates, so nobody is named. */
  | 'insecure'
  /** Over TLS without a client certificate (refused before any service). */
  | 'no certificate'
  /** The daemon itself (AuditResumed). */
  | 'daemon';

/** What was touched, by count and number only: see AUDIT_FIELDS. */
export type AuditWhat = Record<string, string | number | boolean>;

export interface AuditEntry {
  seq: number;
  /** ISO 8601, UTC. */
  time: string;
  who: AuditWho;
  rpc: string;
  /** The gRPC status code's name the call ended with (OK, PERMISSION_DENIED, ...). */
  outcome: string;
  what: AuditWhat;
  /** SHA-256 (hex) of the previous entry's line as written, or GENESIS. */
  prev: string;
  /** SHA-256 (hex) of this entry's canonical JSON without `hash`. */
  hash: string;
}

/** An entry before the file gives it its place in the chain. */
export type AuditEvent = Omit<AuditEntry, 'seq' | 'prev' | 'hash'>;

/**
 * The only fields of a call's log fields an entry keeps, and the shape each
 * must have; anything else is dropped. Counts, the protocol's name and group
 * numbers: never an ID, a lookup tag, a session id, a ticket, a value.
 */
const COUNT = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const AUDIT_FIELDS: Readonly<Record<string, (v: unknown) => boolean>> = {
  protocol: (v) => typeof v === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(v),
  // The collection a call named (server-common/src/collections.ts): a name the owner chose, not a record's.
  collection: (v) => typeof v === 'string' && /^[a-z0-9][a-z0-9._-]{0,63}$/.test(v),
  k: COUNT,
  records: COUNT,
  rejected: COUNT,
  group: COUNT,
  groups: (v) => typeof v === 'string' && /^(\d{1,10}(,\d{1,10})*)?$/.test(v),
  stored: COUNT,
  replaced: COUNT,
  deleted: COUNT,
  parts: COUNT,
  steps: COUNT,
  agrees: (v) => typeof v === 'boolean',
  entries: COUNT,
  refused: (v) => v === true,
  // A refusal because the CA revoked the caller's certificate (access-control.ts).
  revoked: (v) => v === true,
  skippedLines: COUNT,
  skippedBytes: COUNT,
};

/** A delete may name thousands of groups: an entry lists this many and counts the rest. */
export const MAX_GROUPS_LISTED = 64;
/** A certificate's CN is at most 64 characters (X.509's upper bound); anything longer is cut here. */
const MAX_SUBJECT = 256;

/** A call's log fields, cut down to what an entry may hold. */
export function auditWhat(fields: Readonly<Record<string, unknown>>): AuditWhat {
  const what: AuditWhat = {};
  for (const [name, value] of Object.entries(fields)) {
    const allowed = AUDIT_FIELDS[name];
    if (allowed?.(value)) what[name] = value as string | number | boolean;
  }
  if (typeof what.groups === 'string' && what.groups !== '') {
    const groups = what.groups.split(',');
    if (groups.length > MAX_GROUPS_LISTED) {
      what.groups = groups.slice(0, MAX_GROUPS_LISTED).join(',');
      what.groupsNotListed = groups.length - MAX_GROUPS_LISTED;
    }
  }
  return what;
}

/** The event a call's record becomes; `tls` says what a call without a certificate means. */
export function auditEvent(record: CallRecord, tls: boolean, now = new Date()): AuditEvent {
  const c = record.caller;
  return {
    time: now.toISOString(),
    who: c ? { subject: c.subject.slice(0, MAX_SUBJECT), role: c.role, serial: c.serial } : tls ? 'no certificate' : 'insecure',
    rpc: record.rpc,
    outcome: codeName(record.code),
    what: auditWhat(record.fields),
  };
}

export const codeName = (code: number): string => (status[code] as string | undefined) ?? `CODE_${code}`;

/**
 * The calls an audit trail may leave out when they succeed: reads of counts
 * and digests that say nothing of records or people. A failed one is kept
 * like any failure; every other RPC (uploads, deletes, queries, replica
 * changes, sessions, shares, retrievals, reads of the audit) is always kept.
 */
const ROUTINE = new Set(['Status', 'ListCollections', 'ListGroups', 'Replica.ListGroups']);

export const isAudited = (record: Pick<CallRecord, 'rpc' | 'code'>): boolean => record.code !== status.OK || !ROUTINE.has(record.rpc);

// ----- hashing -----

export const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** JSON with every object's keys sorted: the same entry hashes the same whoever serialised it. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export const entryHash = (entry: Omit<AuditEntry, 'hash'>): string => {
  const { hash: _ignored, ...rest } = entry as AuditEntry;
  return sha256(canonicalJson(rest));
};

/** The entry that follows the line `prevLine` (undefined: the first), as one line of the file without its newline. */
export function chainEntry(event: AuditEvent, seq: number, prevLine: string | undefined): { entry: AuditEntry; line: string } {
  const unhashed = {
    seq,
    time: event.time,
    who: event.who,
    rpc: event.rpc,
    outcome: event.outcome,
    what: event.what,
    prev: prevLine === undefined ? GENESIS : sha256(prevLine),
  };
  const entry: AuditEntry = { ...unhashed, hash: entryHash(unhashed) };
  return { entry, line: JSON.stringify(entry) };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** A line as an entry, if it has an entry's shape (its hash is not checked here); undefined for anything else. */
export function parseEntry(line: string): AuditEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const e = value as Record<string, unknown>;
  const shaped =
    Number.isSafeInteger(e.seq) &&
    typeof e.time === 'string' &&
    (typeof e.who === 'string' || (typeof e.who === 'object' && e.who !== null)) &&
    typeof e.rpc === 'string' &&
    typeof e.outcome === 'string' &&
    typeof e.what === 'object' &&
    e.what !== null &&
    typeof e.prev === 'string' &&
    HEX64.test(e.prev) &&
    typeof e.hash === 'string' &&
    HEX64.test(e.hash);
  return shaped ? (value as AuditEntry) : undefined;
}

// ----- verification -----

/** Where the chain was last seen: the owner keeps it (`fnn audit --verify` prints it) to catch a cut tail later. */
export interface ChainHead {
  seq: number;
  /** SHA-256 of the entry's line: the next entry's `prev`. */
  hash: string;
}

export type ChainVerdict =
  { ok: true; entries: number; head: ChainHead | undefined } | { ok: false; line: number; seq: number | undefined; reason: string };

/**
 * Walks a file's lines in order (push each, then end) and stops at the first
 * that does not hold: an entry whose hash is not of its content (edited), whose
 * seq does not follow the one before (a line removed, added or moved), whose
 * prev is not the hash of the line before (replaced), or a line that is not an
 * entry (unless the next entry is the daemon's AuditResumed that counts it).
 * Holds one line and a count, whatever the file's length.
 */
export class ChainVerifier {
  private entries = 0;
  private lineNo = 0;
  private last: { seq: number; lineHash: string } | undefined;
  /** Lines that are not entries since the last entry: the first's number and how many. */
  private skipped: { first: number; count: number } | undefined;
  private bad: Extract<ChainVerdict, { ok: false }> | undefined;
  private keptSeen = false;

  /** `kept`: a head printed by an earlier verification, which this chain must still hold. */
  constructor(private readonly kept?: ChainHead) {}

  get failed(): boolean {
    return this.bad !== undefined;
  }

  push(line: string): void {
    const lineNo = ++this.lineNo;
    if (this.bad) return;
    const entry = parseEntry(line);
    if (!entry) {
      this.skipped = this.skipped ? { ...this.skipped, count: this.skipped.count + 1 } : { first: lineNo, count: 1 };
      return;
    }
    const fail = (reason: string) => {
      this.bad = { ok: false, line: lineNo, seq: entry.seq, reason };
    };
    if (entryHash(entry) !== entry.hash) return fail('its content does not match its hash: the entry was edited');
    if (this.skipped) {
      const counted = entry.rpc === AUDIT_RESUMED && entry.what.skippedLines === this.skipped.count;
      if (!counted) {
        this.bad = { ok: false, line: this.skipped.first, seq: undefined, reason: 'not an audit entry' };
        return;
      }
      this.skipped = undefined;
    }
    const expectedSeq = (this.last?.seq ?? 0) + 1;
    if (entry.seq !== expectedSeq)
      return fail(
        this.last
          ? `its seq follows ${this.last.seq}: an entry before it was removed, added or moved`
          : 'the first entry must have seq 1: entries before it were removed',
      );
    if (entry.prev !== (this.last?.lineHash ?? GENESIS)) return fail('its prev is not the hash of the line before: a line was replaced');
    const lineHash = sha256(line);
    if (this.kept && entry.seq === this.kept.seq) {
      if (lineHash !== this.kept.hash) return fail('it is not the entry of the head you kept: the chain was rewritten from here');
      this.keptSeen = true;
    }
    this.last = { seq: entry.seq, lineHash };
    this.entries++;
  }

  end(): ChainVerdict {
    if (this.bad) return this.bad;
    if (this.skipped)
      return { ok: false, line: this.skipped.first, seq: undefined, reason: 'not an audit entry (the last write was cut short?)' };
    if (this.kept && !this.keptSeen)
      return {
        ok: false,
        line: this.lineNo,
        seq: this.last?.seq,
        reason: `the chain ends before entry ${this.kept.seq}, the head you kept: entries at its end were removed`,
      };
    return { ok: true, entries: this.entries, head: this.last && { seq: this.last.seq, hash: this.last.lineHash } };
  }
}

/** All of `lines` through a ChainVerifier. */
export function verifyChain(lines: Iterable<string>, kept?: ChainHead): ChainVerdict {
  const v = new ChainVerifier(kept);
  for (const line of lines) v.push(line);
  return v.end();
}
