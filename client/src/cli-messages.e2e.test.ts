import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '@fnn/shared';
import { runCli } from './harness';
import { EXIT } from './output';
import { program } from './main';

// The CLI's failures as a person meets them, through the real `fnn` binary:
// each is one line "fnn: WHAT. HINT" on stderr with its documented exit code.
// None of these needs a running daemon (those cases are in cli.e2e.test.ts).

let work: string;
let keys: string;
let image: string;
let held: Server;
let heldAddress: string;

/** Nothing else on stderr: the one line, and nothing after it. */
const oneLine = (stderr: string) => {
  expect(stderr.endsWith('\n') && !stderr.slice(0, -1).includes('\n'), `one line, not: ${stderr}`).toBe(true);
  return stderr.trimEnd();
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-messages-'));
  keys = join(work, 'keys');
  const gen = await runCli(['keygen', '--out', keys, '--bits', '512']);
  expect(gen.code, gen.stderr).toBe(0);
  image = join(work, 'q.png');
  writeFileSync(image, encodePng({ width: 2, height: 2, maxValue: 255, pixels: Uint16Array.from([1, 2, 3, 4]) }));
  held = createServer();
  await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
  heldAddress = `127.0.0.1:${(held.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => held.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

describe('fnn keygen', () => {
  it('says which directory goes to which host', async () => {
    const out = join(work, 'more-keys');
    const run = await runCli(['keygen', '--out', out, '--bits', '256']);
    expect(run.code, run.stderr).toBe(0);
    for (const party of ['c1', 'c2', 'owner', 'doctor']) expect(run.stdout).toContain(`${join(out, party)}/  to `);
    expect(run.stdout).toMatch(/c1\/ +to C1's host: `fnn c1 --keys DIR`/);
  });

  it('--help speaks of two key pairs and the record key', async () => {
    const run = await runCli(['keygen', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout.replace(/\s+/g, ' ')).toMatch(
      /two Paillier key pairs \(C2's and C1's.*and the record key k, one directory per party/,
    );
  });
});

describe('usage errors', () => {
  it('an unknown option is one line with the command to ask for help, exit 2', async () => {
    const run = await runCli(['query', image, '--nope']);
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toBe("fnn: unknown option '--nope'. See `fnn query --help`");
    expect(run.stdout).toBe('');
  });

  it('every command a doctor or the owner runs against the daemons has the whole connection flag set', () => {
    const common = ['--c1', '--c2', '--keys', '--tls-dir', '--tls-ca', '--tls-cert', '--tls-key', '--insecure', '--json'];
    const clients = program.commands.filter((c) => !['keygen', 'certs', 'c1', 'c2'].includes(c.name()));
    expect(clients.map((c) => c.name())).toEqual(expect.arrayContaining(['upload', 'query', 'status', 'check', 'audit', 'health']));
    for (const command of clients) {
      const flags = command.options.map((o) => o.long);
      expect(
        common.filter((f) => !flags.includes(f)),
        `fnn ${command.name()} lacks`,
      ).toEqual([]);
    }
  });

  it('every client command takes the common connection flags (status and check take --keys)', async () => {
    for (const command of ['status', 'check']) {
      const run = await runCli([command, '--c1', 'x y', '--c2', '127.0.0.1:1', '--keys', keys, '--insecure']);
      expect(run.code, `${command}: ${run.stderr}`).toBe(EXIT.usage);
      expect(oneLine(run.stderr), command).toBe('fnn: --c1 must be HOST:PORT, not "x y"');
    }
  });
});

describe('the daemons', () => {
  it('a port in use: one line naming it, exit 2, and no database file left behind', async () => {
    const db = join(work, 'never.db');
    const run = await runCli(['c2', '--listen', heldAddress, '--keys', keys, '--db', db, '--insecure']);
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toBe(`fnn: ${heldAddress} is in use (is another fnn c2 running?). Stop it, or pass another --listen`);
    expect(existsSync(db)).toBe(false);
  });

  it('a server without its secret key is told which directory to copy', async () => {
    const run = await runCli(['c1', '--listen', '127.0.0.1:0', '--keys', join(keys, 'c2'), '--db', join(work, 'no.db'), '--insecure']);
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toMatch(/c1-secret\.json not found .*\. Copy the c1\/ directory of the owner's `fnn keygen` to this host/);
  });
});

describe('fnn query, before it connects', () => {
  const query = (...args: string[]) => runCli(['query', image, '--c1', '127.0.0.1:1', '--c2', '127.0.0.1:2', '--insecure', ...args]);

  it('a doctor without record.key is told to ask the owner for it', async () => {
    const run = await query('--keys', join(keys, 'c1'));
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toMatch(/record\.key not found .*\. Ask the owner for record\.key/);
  });

  it('--out that cannot be made fails at once with exit 2 (it used to spin forever)', async () => {
    const started = Date.now();
    const run = await query('--keys', keys, '--out', '/proc/nope');
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toBe('fnn: --out /proc/nope cannot be created (ENOENT at /proc/nope). Choose a directory you can write to');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('--out that is an existing file: exit 2, says it must be a directory', async () => {
    const run = await query('--keys', keys, '--out', image);
    expect(run.code).toBe(EXIT.usage);
    expect(oneLine(run.stderr)).toBe(
      `fnn: --out ${image}: ${image} is a file, not a directory. --out names a directory for the neighbour images`,
    );
  });

  it('a daemon that is down: which one, where, and `fnn c1`', async () => {
    const run = await query('--keys', keys, '--protocol', 'fnn');
    expect(run.code).toBe(EXIT.unavailable);
    expect(oneLine(run.stderr)).toBe(
      'fnn: UNAVAILABLE: C1 at 127.0.0.1:1 cannot be reached (connection refused). Is `fnn c1` running there?',
    );
  });
});
