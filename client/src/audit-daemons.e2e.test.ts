import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, runCli, type Daemon } from './harness';
import { makeKeys, startC1, startC2 } from './testing/deployment';

// The real `fnn c1` and `fnn c2` keep their trails where the README says: C1
// beside its --db (the default), C2 where FNN_AUDIT points; `fnn audit`, the
// binary, reads and verifies each, and its own reads are the next entries.
// Plaintext here (--insecure): who is "insecure"; the TLS case with named
// certificates is audit.test.ts.

let root: string;
let c1: Daemon;
let c2: Daemon;
let c2Trail: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-audit-daemons-'));
  const keys = await makeKeys(join(root, 'keys'), 512);
  c2Trail = join(root, 'trails', 'c2.jsonl');
  mkdirSync(join(root, 'trails'));
  c2 = await startC2(keys, join(root, 'c2.db'), '127.0.0.1:0', { FNN_AUDIT: c2Trail });
  c1 = await startC1(keys, join(root, 'c1.db'), c2.address, '127.0.0.1:0');
}, 60_000);

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const auditRun = (args: string[]) => runCli(['audit', ...args, '--insecure', '--json'], { FNN_C1: '', FNN_C2: '' });

describe('fnn c1 / fnn c2 --audit', () => {
  it("writes C1's trail beside its database and C2's where FNN_AUDIT says, both mode 0600", async () => {
    const first = await auditRun(['--c1', c1.address, '--verify']);
    expect(first.code, first.stderr).toBe(0);
    expect(jsonLines(first.stdout).at(-1)).toMatchObject({ verified: true, entries: 0 });
    const second = await auditRun(['--c1', c1.address, '--verify']);
    const printed = jsonLines(second.stdout);
    expect(printed[0]).toMatchObject({ line: 1, seq: 1, who: 'insecure', rpc: 'Audit.Read', outcome: 'OK', what: { entries: 0 } });
    expect(printed.at(-1)).toMatchObject({ verified: true, entries: 1, head: { seq: 1 } });
    expect(statSync(join(root, 'c1.db.audit.jsonl')).mode & 0o777).toBe(0o600);

    const atC2 = await auditRun(['--c2', c2.address, '--verify']);
    expect(atC2.code, atC2.stderr).toBe(0);
    expect(statSync(c2Trail).mode & 0o777).toBe(0o600);
    expect(existsSync(join(root, 'c2.db.audit.jsonl')), 'FNN_AUDIT replaces the default').toBe(false);
  });

  it('refuses --head without --verify, and a --since it cannot read, in one usage line (exit 2)', async () => {
    const head = await auditRun(['--c1', c1.address, '--head', `1:${'a'.repeat(64)}`]);
    expect([head.code, head.stderr]).toEqual([2, 'fnn: --head is checked by --verify: pass both. See fnn audit --help\n']);
    const since = await auditRun(['--c1', c1.address, '--since', 'last week']);
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/^fnn: --since must be a date or time .* not "last week"\. See fnn audit --help\n$/);
  });
});
