import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '@fnn/shared';
import { issueAuthority, type Authority } from './certificates';
import { signCrl } from './crl';
import { CliError } from './output';
import { watchRevocations, type RevocationWatch } from './revocation';

// A daemon's list: verified at start, reloaded (the SIGHUP path calls
// reload()) and picked up from the file by polling, never replaced by a
// broken, foreign or older list.

let root: string;
let ca: Authority;
let stranger: Authority;
let path: string;
let lines: { level: string; fields: Record<string, unknown>; message: string }[];
const watches: RevocationWatch[] = [];

function recordingLogger(): Logger {
  const at = (level: string) => (fields: object, message: string) =>
    lines.push({ level, fields: fields as Record<string, unknown>, message });
  const log: Logger = { info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

/** The CA's list of `serials` at `path`, replaced by a rename as `fnn certs revoke` and scp do. */
async function publish(serials: string[], number: bigint, by = ca) {
  const pem = await signCrl(
    by.signer,
    serials.map((serial) => ({ serial, revokedAt: new Date() })),
    number,
  );
  writeFileSync(`${path}.new`, pem);
  renameSync(`${path}.new`, path);
}

async function watch(options: { required?: boolean; pollMs?: number } = {}) {
  const w = await watchRevocations({
    path,
    ca: ca.cert,
    log: recordingLogger(),
    required: options.required ?? false,
    pollMs: options.pollMs,
  });
  watches.push(w);
  return w;
}

/** Wait for `condition`, looking every 20 ms, for at most `ms`. */
async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-revocation-'));
  [ca, stranger] = await Promise.all([issueAuthority(1), issueAuthority(1)]);
});
afterEach(() => {
  watches.splice(0).forEach((w) => w.close());
  lines = [];
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const fresh = () => {
  path = join(root, `crl-${++n}.pem`);
  lines = [];
};

describe('a daemon’s revocation list', () => {
  it('refuses the serials of the list it starts with, in any case and with leading zeros', async () => {
    fresh();
    await publish(['abc123'], 1n);
    const w = await watch({ required: true });
    expect(w.isRevoked('abc123')).toBe(true);
    expect(w.isRevoked('00ABC123')).toBe(true);
    expect(w.isRevoked('abc124')).toBe(false);
    expect(lines).toContainEqual(
      expect.objectContaining({ message: 'revocation list loaded', fields: expect.objectContaining({ revoked: 1 }) }),
    );
  });

  it('does not start with a list signed by another CA, or one that is not a CRL, or none when one was named', async () => {
    fresh();
    await publish(['abc'], 1n, stranger);
    await expect(watch()).rejects.toThrow(CliError);
    await expect(watch()).rejects.toThrow(/is not a usable revocation list: its signature is not the deployment CA's/);
    writeFileSync(path, 'not a list');
    await expect(watch()).rejects.toThrow(/not a PEM certificate revocation list/);
    fresh();
    await expect(watch({ required: true })).rejects.toThrow(/not found/);
  });

  it('reload (what SIGHUP runs) takes a newer list, and keeps the one held when the file is broken, foreign, older or gone', async () => {
    fresh();
    await publish(['a1'], 5n);
    const w = await watch();
    await publish(['a1', 'b2'], 6n);
    expect(await w.reload()).toBe(true);
    expect(w.isRevoked('b2')).toBe(true);

    writeFileSync(path, '-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n');
    expect(await w.reload()).toBe(false);
    await publish([], 7n, stranger);
    expect(await w.reload()).toBe(false);
    await publish([], 4n);
    expect(await w.reload()).toBe(false);
    rmSync(path);
    expect(await w.reload()).toBe(false);

    expect(w.isRevoked('a1') && w.isRevoked('b2')).toBe(true);
    expect(w.current()!.number).toBe(6n);
    const errors = lines.filter((l) => l.level === 'error').map((l) => l.message);
    expect(errors).toEqual([
      'revocation list not reloaded; the previous one stays',
      'revocation list not reloaded; the previous one stays',
      'revocation list not reloaded: older than the one held',
      'revocation list not reloaded; the previous one stays',
    ]);
    // One line each, with the reason and not the file's content.
    expect(JSON.stringify(lines)).not.toContain('garbage');
  });

  it('picks up a list written after the start, and each newer one, from the file alone', async () => {
    fresh();
    const w = await watch({ pollMs: 50 });
    expect(w.current()).toBeUndefined();
    expect(w.isRevoked('c3')).toBe(false);
    await publish(['c3'], 1n);
    await until(() => w.isRevoked('c3'));
    await publish(['c3', 'd4'], 2n);
    await until(() => w.isRevoked('d4'));
    expect(w.current()!.number).toBe(2n);
  });
});
