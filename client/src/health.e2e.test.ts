import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { makeKeys, type Keys } from './testing/deployment';

// `fnn health`, the check deploy/'s systemd units and Dockerfile run: a
// daemon's grpc.health.v1 over TLS with the daemon's own certificate, exit 0
// when it is SERVING and 5, in one line, when it cannot be reached.

let work: string;
let keys: Keys;
let certs: string;
let c2: Daemon;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-health-'));
  keys = await makeKeys(join(work, 'keys'));
  certs = join(work, 'certs');
  const issued = await runCli(['certs', '--out', certs, '--json']);
  expect(issued.code, issued.stderr).toBe(0);
  c2 = await startDaemon('c2', [
    '--listen',
    '127.0.0.1:0',
    '--keys',
    keys.dir,
    '--db',
    join(work, 'c2.db'),
    '--tls-dir',
    join(certs, 'c2'),
  ]);
});

afterAll(async () => {
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A port nothing listens on: bound once, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('fnn health', () => {
  it("exits 0 for a daemon that is SERVING, asked with the daemon's own certificate", async () => {
    const run = await runCli(['health', '--c2', c2.address, '--tls-dir', join(certs, 'c2')]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(`C2 ${c2.address}: SERVING`);
    const json = await runCli(['health', '--c2', c2.address, '--tls-dir', join(certs, 'owner'), '--json']);
    expect(jsonLines(json.stdout)).toEqual([{ daemons: [{ daemon: 'c2', address: c2.address, serving: true }] }]);
  });

  it('exits 5 in one line for a daemon that does not answer', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const run = await runCli(['health', '--c1', address, '--tls-dir', join(certs, 'c1')]);
    expect(run.code).toBe(5);
    expect(run.stderr.trim()).toBe(`fnn: C1 ${address}: not answering (UNAVAILABLE). Is \`fnn c1\` running?`);
  });

  it('exits 2 when no daemon is named', async () => {
    const run = await runCli(['health', '--insecure'], { FNN_C1: undefined, FNN_C2: undefined });
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe('fnn: no daemon to check: pass --c1 HOST:PORT or --c2 HOST:PORT. See fnn health --help');
  });
});
