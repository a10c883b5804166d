import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { CallRecord } from '../wire/access-control';
import {
  AUDIT_RESUMED,
  auditEvent,
  auditWhat,
  chainEntry,
  GENESIS,
  isAudited,
  MAX_GROUPS_LISTED,
  sha256,
  verifyChain,
  type AuditEvent,
} from './chain';

// An entry keeps only counts, a protocol name and group numbers; the chain
// walk names the first entry that was edited, removed, added or replaced.

const record = (over: Partial<CallRecord> = {}): CallRecord => ({
  rpc: 'Query',
  requestId: 'r1',
  caller: { subject: 'Dr Ada', role: 'doctor', serial: 'ab12' },
  fields: { protocol: 'fast', k: 2, records: 10, rejected: 0 },
  code: status.OK,
  ms: 12,
  ...over,
});

const event = (rpc: string, what: AuditEvent['what'] = {}): AuditEvent => ({
  time: '2026-12-02T07:00:00.000Z',
  who: { subject: 'owner', role: 'owner', serial: '1' },
  rpc,
  outcome: 'OK',
  what,
});

/** A chain of n entries, as the file holds it. */
function chain(n: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(chainEntry(event(`Upload`, { group: i }), i + 1, lines.at(-1)).line);
  return lines;
}

describe('audit entries', () => {
  it('name who called, the RPC, its outcome by name and its counts', () => {
    const e = auditEvent(record({ code: status.PERMISSION_DENIED }), true, new Date(Date.UTC(2026, 11, 2)));
    expect(e).toEqual({
      time: '2026-12-02T00:00:00.000Z',
      who: { subject: 'Dr Ada', role: 'doctor', serial: 'ab12' },
      rpc: 'Query',
      outcome: 'PERMISSION_DENIED',
      what: { protocol: 'fast', k: 2, records: 10, rejected: 0 },
    });
    expect(auditEvent(record({ caller: undefined }), false).who).toBe('insecure');
    expect(auditEvent(record({ caller: undefined }), true).who).toBe('no certificate');
  });

  it('keep only the allowed fields, of the allowed shape: never a session id, a tag, an ID or free text', () => {
    const what = auditWhat({
      protocol: 'fast',
      k: 3,
      session: 'a1b2c3',
      tag: 'patient-7',
      id: 'patient-7',
      records: -1,
      groups: '1,2,patient-7',
      stored: 1.5,
      refused: true,
    });
    expect(what).toEqual({ protocol: 'fast', k: 3, refused: true });
    expect(auditWhat({ protocol: 'Patient 7 <script>' })).toEqual({});
  });

  it('keep the collection a call named (a label the owner chose), and no name outside the collection rule', () => {
    expect(auditWhat({ collection: 'ct-chest', protocol: 'fast' })).toEqual({ collection: 'ct-chest', protocol: 'fast' });
    expect(auditWhat({ collection: 'Patient 7' })).toEqual({});
    expect(auditWhat({ collection: '../c1.db' })).toEqual({});
    expect(auditWhat({ collection: 'x'.repeat(65) })).toEqual({});
  });

  it('list at most MAX_GROUPS_LISTED groups and count the rest', () => {
    const groups = Array.from({ length: MAX_GROUPS_LISTED + 5 }, (_, i) => i).join(',');
    const what = auditWhat({ groups, deleted: 200 });
    expect(what.groups).toBe(Array.from({ length: MAX_GROUPS_LISTED }, (_, i) => i).join(','));
    expect(what.groupsNotListed).toBe(5);
    expect(what.deleted).toBe(200);
  });

  it('leave out only successful reads of counts and digests; their failures and every other call are kept', () => {
    expect(isAudited({ rpc: 'Status', code: status.OK })).toBe(false);
    expect(isAudited({ rpc: 'Replica.ListGroups', code: status.OK })).toBe(false);
    expect(isAudited({ rpc: 'ListCollections', code: status.OK }), "a viewer's collection picker polls it").toBe(false);
    expect(isAudited({ rpc: 'Status', code: status.PERMISSION_DENIED })).toBe(true);
    for (const rpc of ['Upload', 'Delete', 'Query', 'BatchQuery', 'Replica.PutGroup', 'Session', 'PutShare', 'Retrieve', 'Audit.Read'])
      expect(isAudited({ rpc, code: status.OK }), rpc).toBe(true);
  });
});

describe('the hash chain', () => {
  it('starts at GENESIS and links each entry to the hash of the line before', () => {
    const lines = chain(3);
    const entries = lines.map((l) => JSON.parse(l) as { seq: number; prev: string });
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries[0].prev).toBe(GENESIS);
    expect(entries[2].prev).toBe(sha256(lines[1]));
    expect(verifyChain(lines)).toEqual({ ok: true, entries: 3, head: { seq: 3, hash: sha256(lines[2]) } });
    expect(verifyChain([])).toEqual({ ok: true, entries: 0, head: undefined });
  });

  it('names an edited entry by seq and line', () => {
    const lines = chain(5);
    lines[2] = lines[2].replace('"group":2', '"group":7');
    expect(verifyChain(lines)).toMatchObject({ ok: false, seq: 3, line: 3, reason: expect.stringContaining('edited') });
  });

  it('names the entry after a removed line, and a first entry removed', () => {
    const lines = chain(5);
    expect(verifyChain([...lines.slice(0, 2), ...lines.slice(3)])).toMatchObject({ ok: false, seq: 4, line: 3 });
    expect(verifyChain(lines.slice(1))).toMatchObject({ ok: false, seq: 2, line: 1 });
  });

  it('names an entry rewritten with its hash recomputed: the next link breaks', () => {
    const lines = chain(4);
    const forged = chainEntry(event('Upload', { group: 99 }), 2, lines[0]).line;
    const verdict = verifyChain([lines[0], forged, lines[2], lines[3]]);
    expect(verdict).toMatchObject({ ok: false, seq: 3, line: 3, reason: expect.stringContaining('prev') });
  });

  it('names a line that is not an entry, unless the next entry is the AuditResumed that counts it', () => {
    const lines = chain(2);
    expect(verifyChain([lines[0], '{"seq":2,"ti', lines[1]])).toMatchObject({ ok: false, line: 2, seq: undefined });
    expect(verifyChain([...lines, '{"seq":3,"ti'])).toMatchObject({ ok: false, line: 3, reason: expect.stringContaining('cut short') });
    const resumed = chainEntry({ ...event(AUDIT_RESUMED, { skippedLines: 1, skippedBytes: 12 }), who: 'daemon' }, 3, lines[1]).line;
    expect(verifyChain([...lines, '{"seq":3,"ti', resumed])).toMatchObject({ ok: true, entries: 3 });
    const miscounted = chainEntry({ ...event(AUDIT_RESUMED, { skippedLines: 2, skippedBytes: 12 }), who: 'daemon' }, 3, lines[1]).line;
    expect(verifyChain([...lines, '{"seq":3,"ti', miscounted])).toMatchObject({ ok: false, line: 3 });
  });

  it('with a head kept from an earlier walk, catches a tail cut off or rewritten', () => {
    const lines = chain(6);
    const kept = { seq: 5, hash: sha256(lines[4]) };
    expect(verifyChain(lines, kept)).toMatchObject({ ok: true, entries: 6 });
    expect(verifyChain(lines.slice(0, 4), kept)).toMatchObject({ ok: false, reason: expect.stringContaining('head you kept') });
    const rewritten = [...lines.slice(0, 4), chainEntry(event('Upload', { group: 42 }), 5, lines[3]).line];
    expect(verifyChain(rewritten, kept)).toMatchObject({ ok: false, seq: 5, line: 5 });
  });
});
