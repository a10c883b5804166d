import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type Logger } from '../logger';
import { AuditFile, MAX_ENTRY_BYTES, readAuditLines } from './audit-file';
import { AUDIT_RESUMED, verifyChain, type AuditEvent } from './chain';

// The trail on disk: appended entry by entry, continued across restarts, a
// write cut short marked so that the chain still verifies, and read back in
// chunks as the Audit service sends it.

/** A disk that fills: while `full`, a write puts down half its bytes and fails with ENOSPC, as write(2) may. */
const disk = vi.hoisted(() => ({ full: false }));
vi.mock('node:fs', async (original) => {
  const fs = await original<typeof import('node:fs')>();
  const writeSync = ((fd: number, data: Buffer | string, ...rest: unknown[]) => {
    if (!disk.full) return (fs.writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
    const bytes = Buffer.isBuffer(data) ? data.subarray((rest[0] as number | undefined) ?? 0) : Buffer.from(data);
    fs.writeSync(fd, bytes.subarray(0, Math.floor(bytes.length / 2)));
    throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  }) as typeof fs.writeSync;
  return { ...fs, default: { ...fs, writeSync }, writeSync };
});

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fnn-audit-file-'));
  path = join(dir, 'c1.audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const event = (group: number): AuditEvent => ({
  time: new Date().toISOString(),
  who: { subject: 'owner', role: 'owner', serial: '1' },
  rpc: 'Upload',
  outcome: 'OK',
  what: { group, stored: 1 },
});

const fileLines = () => readFileSync(path, 'utf8').split('\n').slice(0, -1);
const entries = () => fileLines().map((l) => JSON.parse(l) as { seq: number; rpc: string; what: Record<string, number> });

function appendAll(groups: number[]): void {
  const file = AuditFile.open(path, silentLogger);
  for (const g of groups) expect(file.append(event(g))).toBe(true);
  file.close();
}

describe('AuditFile', () => {
  it('writes one line per entry to a file only its owner can read', () => {
    appendAll([0, 1, 2]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(entries().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(verifyChain(fileLines())).toMatchObject({ ok: true, entries: 3 });
  });

  it('continues the chain of the file it reopens', () => {
    appendAll([0, 1]);
    appendAll([2]);
    expect(entries().map((e) => [e.seq, e.what.group])).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
    ]);
    expect(verifyChain(fileLines())).toMatchObject({ ok: true, entries: 3 });
  });

  it('after a write cut short, marks the cut line with an AuditResumed entry on reopen: the chain verifies and counts it', () => {
    appendAll([0, 1]);
    appendFileSync(path, '{"seq":3,"time":"2026-');
    appendAll([5]);
    const lines = fileLines();
    expect(lines).toHaveLength(5);
    expect(lines[2]).toBe('{"seq":3,"time":"2026-');
    expect(JSON.parse(lines[3])).toMatchObject({ seq: 3, rpc: AUDIT_RESUMED, who: 'daemon', what: { skippedLines: 1, skippedBytes: 22 } });
    expect(JSON.parse(lines[4])).toMatchObject({ seq: 4, what: { group: 5 } });
    expect(verifyChain(lines)).toMatchObject({ ok: true, entries: 4 });
  });

  it('ends a last entry whole but for its newline, and continues after it', () => {
    appendAll([0, 1]);
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, -1));
    appendAll([2]);
    expect(entries().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(verifyChain(fileLines())).toMatchObject({ ok: true, entries: 3 });
  });

  it('when a write fails half done: logs it without the entry, counts it, and marks the torn half before the next entry', () => {
    const logged: { fields: object; message: string }[] = [];
    const log: Logger = { ...silentLogger, error: (fields, message) => logged.push({ fields, message }) };
    const file = AuditFile.open(path, log);
    expect(file.append(event(0))).toBe(true);
    disk.full = true;
    try {
      expect(file.append(event(1))).toBe(false);
    } finally {
      disk.full = false;
    }
    expect(file.failures).toBe(1);
    expect(logged).toEqual([{ fields: { audit: path, code: 'ENOSPC', failures: 1 }, message: 'audit write failed' }]);
    expect(file.append(event(2))).toBe(true);
    file.close();
    const lines = fileLines();
    expect(lines).toHaveLength(4);
    expect(JSON.parse(lines[2])).toMatchObject({ seq: 2, rpc: AUDIT_RESUMED, what: { skippedLines: 1 } });
    expect(JSON.parse(lines[3])).toMatchObject({ seq: 3, what: { group: 2 } });
    expect(verifyChain(lines)).toMatchObject({ ok: true, entries: 3 });
  });

  it('refuses a file with no entry near its end, naming it', () => {
    writeFileSync(path, 'not an audit trail\n');
    expect(() => AuditFile.open(path, silentLogger)).toThrow(`the audit file ${path} has no audit entry`);
    expect(readFileSync(path, 'utf8')).toBe('not an audit trail\n');
  });
});

describe('readAuditLines', () => {
  const read = async (size = statSync(path).size) => {
    const lines: string[] = [];
    for await (const line of readAuditLines(path, size)) lines.push(line);
    return lines;
  };

  it('gives the lines up to the size asked for, across chunk boundaries', async () => {
    appendAll(Array.from({ length: 2000 }, (_, i) => i));
    const lines = await read();
    expect(lines).toEqual(fileLines());
    expect(lines.length).toBe(2000);
    const firstTwo = Buffer.byteLength(lines[0]) + Buffer.byteLength(lines[1]) + 2;
    expect(await read(firstTwo)).toEqual(lines.slice(0, 2));
  });

  it('cuts a line longer than any entry, and gives a last line without its newline', async () => {
    writeFileSync(path, 'x'.repeat(200_000) + '\nlast');
    const lines = await read();
    expect(lines.map((l) => l.length)).toEqual([MAX_ENTRY_BYTES, 4]);
  });
});
