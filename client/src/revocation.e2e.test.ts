import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '@fnn/shared';
import { call, connectC1, connectC2 } from './connect';
import { jsonLines, runCli, startDaemon, type Daemon } from './harness';
import { EXIT } from './output';
import { transportFrom } from './tls-files';

// Two doctors with their own certificates from one CA, both daemons over
// mutual TLS as `fnn c1`/`fnn c2` run them: the owner revokes one with
// `fnn certs revoke`, and without a restart both daemons refuse her (and log
// who she is) while the other keeps working.

let work: string;
let keys: string;
let certs: string;
let c1: Daemon;
let c2: Daemon;
const people = {} as Record<'alice' | 'bob', { dir: string; serial: string }>;

const asParty = (dir: string) => ({ FNN_TLS_DIR: dir });
const owner = () => join(certs, 'owner');

async function issue(name: string) {
  const run = await runCli(['certs', 'issue', '--dir', certs, '--role', 'doctor', '--name', name, '--json']);
  expect(run.code, run.stderr).toBe(0);
  const [issued] = jsonLines(run.stdout) as { out: string; serial: string }[];
  return { dir: issued.out, serial: issued.serial };
}

const query = (dir: string) =>
  runCli(
    ['query', join(work, 'scan.png'), '--c1', c1.address, '--c2', c2.address, '--keys', keys, '--protocol', 'fast', '--json'],
    asParty(dir),
  );

/** Status at C1 and C2 with a person's certificate: the gRPC code each answers with. */
async function codesFor(dir: string): Promise<[number, number]> {
  const transport = transportFrom({ tlsDir: dir }, ['doctor']);
  const db = connectC1(c1.address, transport);
  const holder = connectC2(c2.address, transport);
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => Code.OK,
      (e: ServiceError) => e.code,
    );
  try {
    return await Promise.all([codeOf(call(db.status.bind(db), {}, 5000)), codeOf(call(holder.status.bind(holder), {}, 5000))]);
  } finally {
    db.close();
    holder.close();
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-revocation-e2e-'));
  keys = join(work, 'keys');
  certs = join(work, 'certs');
  const gen = await runCli(['keygen', '--out', keys, '--bits', '512', '--json']);
  expect(gen.code, gen.stderr).toBe(0);
  // `fnn certs --out` is still `fnn certs init --out`.
  const init = await runCli(['certs', '--out', certs, '--json']);
  expect(init.code, init.stderr).toBe(0);
  people.alice = await issue('Alice Martin');
  people.bob = await issue('Bob Stone');
  const ready = transportFrom({ tlsDir: owner() }, ['owner']);
  c2 = await startDaemon('c2', ['--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2.db')], asParty(join(certs, 'c2')), ready);
  c1 = await startDaemon(
    'c1',
    ['--listen', '127.0.0.1:0', '--keys', keys, '--c2', c2.address, '--db', join(work, 'c1.db')],
    asParty(join(certs, 'c1')),
    ready,
  );
  const pixels = Uint16Array.from({ length: 16 }, (_, i) => i * 7);
  writeFileSync(join(work, 'scan.png'), encodePng({ width: 4, height: 4, maxValue: 255, pixels }));
  const up = await runCli(
    ['upload', join(work, 'scan.png'), '--c1', c1.address, '--c2', c2.address, '--keys', keys, '--json'],
    asParty(owner()),
  );
  expect(up.code, up.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await c1?.stop();
  await c2?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('revoking a person', () => {
  it('two doctors with their own certificates both query; once one is revoked both daemons refuse her without a restart, and the other still queries', async () => {
    for (const person of [people.alice, people.bob]) {
      const run = await query(person.dir);
      expect(run.code, run.stderr).toBe(0);
      expect((jsonLines(run.stdout)[0] as { results: { id: string }[] }).results[0].id).toBe('scan.png');
    }
    const revoke = await runCli(['certs', 'revoke', '--dir', certs, 'Alice Martin', '--json']);
    expect(revoke.code, revoke.stderr).toBe(0);

    // The daemons poll their crl.pem (about a second); a bound, not a sleep.
    const end = Date.now() + 15_000;
    let codes = await codesFor(people.alice.dir);
    while (codes.some((c) => c !== Code.UNAUTHENTICATED) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      codes = await codesFor(people.alice.dir);
    }
    expect(codes).toEqual([Code.UNAUTHENTICATED, Code.UNAUTHENTICATED]);

    const refused = await query(people.alice.dir);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.stderr).toContain(`this certificate (serial ${people.alice.serial}) is revoked`);
    // fnn status says she is refused, not that the daemons are down.
    const looked = await runCli(['status', '--c1', c1.address, '--c2', c2.address], asParty(people.alice.dir));
    expect(looked.code, looked.stderr).toBe(EXIT.refused);
    expect(looked.stderr).toMatch(/^fnn: C1 \S+ refused this certificate \(.*is revoked.*\)/m);

    const still = await query(people.bob.dir);
    expect(still.code, still.stderr).toBe(0);
    expect(await codesFor(people.bob.dir)).toEqual([Code.OK, Code.OK]);
  });

  it("logs each refusal of a revoked certificate with its subject's name and its serial, at C1 and at C2", () => {
    for (const daemon of [c1, c2]) {
      const lines = daemon
        .log()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'refused',
          subject: 'Alice Martin',
          serial: people.alice.serial,
          revoked: true,
          code: Code.UNAUTHENTICATED,
        }),
      );
      expect(lines.some((l) => l.msg === 'refused' && l.subject === 'Bob Stone')).toBe(false);
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'revocation list loaded', number: '2', revoked: 1 }));
    }
  });

  it("puts each refusal of a revoked certificate in both daemons' audit trails, under her name and serial", () => {
    for (const db of ['c1.db', 'c2.db']) {
      const entries = readFileSync(join(work, `${db}.audit.jsonl`), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { who: unknown; outcome: string; what: Record<string, unknown> });
      expect(entries, db).toContainEqual(
        expect.objectContaining({
          who: { subject: 'Alice Martin', role: 'doctor', serial: people.alice.serial },
          outcome: 'UNAUTHENTICATED',
          what: expect.objectContaining({ refused: true, revoked: true }),
        }),
      );
    }
  });

  it('SIGHUP makes a daemon re-read its list, and the daemon keeps serving', async () => {
    c1.child.kill('SIGHUP');
    const end = Date.now() + 10_000;
    while (!c1.log().includes('reloading the revocation list') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(c1.log()).toContain('reloading the revocation list');
    expect(c1.child.exitCode).toBeNull();
    expect(await codesFor(people.bob.dir)).toEqual([Code.OK, Code.OK]);
  });

  it('a daemon does not start with a CRL signed by another CA: one line, exit 2', async () => {
    const other = join(work, 'other');
    expect((await runCli(['certs', 'init', '--out', other])).code).toBe(0);
    const run = await runCli(
      ['c2', '--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c2-foreign.db'), '--tls-crl', join(other, 'crl.pem')],
      asParty(join(certs, 'c2')),
    );
    expect(run.code).toBe(EXIT.usage);
    expect(
      run.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('fnn:')),
    ).toEqual([`fnn: ${join(other, 'crl.pem')} is not a usable revocation list: its signature is not the deployment CA's`]);
    expect(run.stdout).not.toContain('listening');
  });

  it('--tls-crl names a file that must be there, and cannot go with --insecure', async () => {
    const base = ['c1', '--listen', '127.0.0.1:0', '--keys', keys, '--db', join(work, 'c1-flags.db')];
    const missing = await runCli([...base, '--tls-crl', join(work, 'nope.pem')], asParty(join(certs, 'c1')));
    expect(missing.code).toBe(EXIT.usage);
    expect(missing.stderr).toContain('nope.pem not found');
    const plain = await runCli([...base, '--insecure', '--tls-crl', join(certs, 'crl.pem')]);
    expect(plain.code).toBe(EXIT.usage);
    expect(plain.stderr).toContain('--tls-crl needs TLS');
  });
  // Last: it leaves the deployment without a usable C2.
  it('C1 sends nothing to a C2 whose certificate is revoked, even over the connection it already had, and says why', async () => {
    const before = await query(people.bob.dir);
    expect(before.code, before.stderr).toBe(0); // C1 holds a connection to C2 from now on
    const listed = await runCli(['certs', 'list', '--dir', certs, '--json']);
    const c2Serial = (jsonLines(listed.stdout) as { role: string; serial: string }[]).find((e) => e.role === 'c2')!.serial;
    const revoke = await runCli(['certs', 'revoke', '--dir', certs, 'c2', '--json']);
    expect(revoke.code, revoke.stderr).toBe(0);
    // C1 polls its crl.pem (about a second): the query is refused once the list is in, a bound, not a sleep.
    const end = Date.now() + 20_000;
    let run = await query(people.bob.dir);
    while (run.code === 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      run = await query(people.bob.dir);
    }
    expect(run.code).toBe(EXIT.unavailable);
    expect(run.stderr.toLowerCase()).toContain('revoked certificate');
    expect(run.stderr.replace(/:/g, '').toLowerCase()).toContain(c2Serial.replace(/:/g, '').toLowerCase());
  }, 60_000);
});
