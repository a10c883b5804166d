import { EventEmitter } from 'node:events';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditLines } from '@fnn/proto';
import { INSECURE, silentLogger, verifyChain, type CallRecord, type StatusObject } from '@fnn/shared';
import { auditService, daemonAudit } from './audit';

// A daemon's trail: its observer writes the audited calls only, and Audit.Read
// sends the file's lines in bounded messages, picking the entries since a
// time but never hiding a line that is not an entry.

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fnn-daemon-audit-'));
  path = join(dir, 'c1.audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const record = (rpc: string, code = status.OK): CallRecord => ({ rpc, requestId: 'r', caller: undefined, fields: { k: 1 }, code, ms: 1 });

/** Audit.Read's replies to one request, or the status it ended with. */
async function read(service: ReturnType<typeof auditService>, sinceMs = 0n) {
  const emitter = new EventEmitter();
  const messages: AuditLines[] = [];
  const ended = new Promise<StatusObject | undefined>((resolve) => {
    emitter.on('error', (s: StatusObject) => resolve(s));
    Object.assign(emitter, {
      request: { sinceMs },
      metadata: new Metadata(),
      cancelled: false,
      writable: true,
      write: (m: AuditLines) => (messages.push(m), true),
      end: () => resolve(undefined),
    });
  });
  service.read(emitter as never);
  return { error: await ended, messages, lines: messages.flatMap((m) => m.lines) };
}

describe('daemonAudit', () => {
  it('writes an entry for each audited call, not for a successful Status', () => {
    const audit = daemonAudit(path, silentLogger, INSECURE);
    const [observe] = audit.observers;
    for (const r of [record('Upload'), record('Status'), record('Status', status.UNAVAILABLE), record('Query')]) observe(r);
    audit.close();
    return read(auditService(silentLogger, () => {}, path)).then(({ lines }) => {
      expect(lines.map((l) => (JSON.parse(l) as { rpc: string; outcome: string; who: string }).rpc)).toEqual(['Upload', 'Status', 'Query']);
      expect(JSON.parse(lines[0])).toMatchObject({ who: 'insecure', outcome: 'OK', what: { k: 1 } });
      expect(verifyChain(lines)).toMatchObject({ ok: true, entries: 3 });
    });
  });

  it('keeps no trail without a path: no observer, and Audit.Read says why (FAILED_PRECONDITION)', async () => {
    const audit = daemonAudit(undefined, silentLogger, INSECURE);
    expect(audit.observers).toEqual([]);
    const { error } = await read(auditService(silentLogger, () => {}, undefined));
    expect(error).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: 'this daemon keeps no audit trail (started without --audit)',
    });
  });
});

describe('Audit.Read', () => {
  it('sends every line in messages of at most 512 lines, and its own call is heard (the read is audited)', async () => {
    const audit = daemonAudit(path, silentLogger, INSECURE);
    for (let i = 0; i < 1100; i++) audit.observers[0](record('Query'));
    const heard: CallRecord[] = [];
    const { messages, lines } = await read(auditService(silentLogger, (r) => heard.push(r), path));
    audit.close();
    expect(lines).toHaveLength(1100);
    expect(messages.map((m) => m.lines.length)).toEqual([512, 512, 76]);
    // Heard once the handler has settled, a few ticks after it ended the stream.
    await vi.waitFor(() => expect(heard.map((r) => [r.rpc, r.code, r.fields.entries])).toEqual([['Audit.Read', status.OK, 1100]]), {
      timeout: 5000,
    });
  });

  it('with since_ms, sends the entries from then on and every line that is not an entry', async () => {
    const audit = daemonAudit(path, silentLogger, INSECURE);
    audit.observers[0](record('Upload'));
    audit.close();
    appendFileSync(path, 'torn\n');
    const since = BigInt(Date.now() + 60_000);
    const { lines } = await read(
      auditService(silentLogger, () => {}, path),
      since,
    );
    expect(lines).toEqual(['torn']);
  });
});
