import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCAL_HOSTS, writeCertificateDirectory } from './certificate-directory';
import { readRegister } from './certificate-register';
import { readCrl } from './crl';
import { CliError } from './output';
import { directoryName, issuePerson, listCertificates, nameProblem, resignCrl, revokeCertificate } from './person-certificates';
import { transportFrom } from './tls-files';

// One certificate per person from the kept CA, the register that says who
// holds which serial, and the CRL made from it.

let dir: string;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fnn-people-'));
  await writeCertificateDirectory(dir, { c1Hosts: LOCAL_HOSTS, c2Hosts: LOCAL_HOSTS, days: 1 });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const crlAt = (path: string) => readCrl(readFileSync(path), readFileSync(join(dir, 'ca.pem')));

/** The CliError a call must fail with. */
async function usageError(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CliError);
  expect((error as CliError).kind).toBe('usage');
  expect((error as CliError).message).not.toContain('\n');
  return (error as CliError).message;
}

describe('person names', () => {
  it('accepts names of any script with the punctuation of names', () => {
    for (const name of ['Alice', "Dr. Jean-Luc O'Neill", 'José Müller', '李小龙', 'a.b_c@ward (3)', 'x'.repeat(64)])
      expect(nameProblem(name), name).toBeUndefined();
  });

  it('refuses an empty or too long name, one with / or a newline or a control character, and surrounding spaces', () => {
    for (const name of ['', 'x'.repeat(65), 'a/b', 'alice\nbob', 'tab\there', 'bell\u0007', ' alice', 'alice ', '-alice', 'a=b,OU=owner'])
      expect(nameProblem(name), JSON.stringify(name)).toMatch(/^--name /);
  });

  it('never echoes the refused name, which may hold anything', () => {
    expect(nameProblem('evil\nname')).not.toContain('evil');
  });

  it('gives each person a directory name of plain ASCII, or their serial when none is left', () => {
    expect(directoryName('José Müller', 'abc')).toBe('jose-muller');
    expect(directoryName('Dr. A B', 'abc')).toBe('dr-a-b');
    expect(directoryName('李小龙', '0123456789ab')).toBe('person-01234567');
  });
});

describe('fnn certs issue, revoke and list', () => {
  it('registers the parties `fnn certs init` issued and writes an empty CRL for both daemons', async () => {
    expect(listCertificates(dir).map((e) => `${e.name}/${e.role}`)).toEqual(['c1/c1', 'c2/c2', 'owner/owner', 'doctor/doctor']);
    const serialOfDoctor = new X509Certificate(readFileSync(join(dir, 'doctor', 'cert.pem'))).serialNumber.toLowerCase().replace(/^0+/, '');
    expect(listCertificates(dir)[3].serial).toBe(serialOfDoctor);
    for (const path of [join(dir, 'crl.pem'), join(dir, 'c1', 'crl.pem'), join(dir, 'c2', 'crl.pem')]) {
      const list = await crlAt(path);
      expect(list.number).toBe(1n);
      expect(list.serials.size).toBe(0);
    }
  });

  it("issues a person's certificate (CN = name, OU = role) into a directory usable as --tls-dir, its key 0600", async () => {
    const { entry, out } = await issuePerson(dir, { role: 'doctor', name: 'Alice Martin', days: 30 });
    expect(out).toBe(join(dir, 'people', 'alice-martin'));
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(join(out, 'cert.pem')));
    expect(cert.subject).toContain('CN=Alice Martin');
    expect(cert.subject).toContain('OU=doctor');
    expect(entry).toMatchObject({ name: 'Alice Martin', role: 'doctor', serial: cert.serialNumber.toLowerCase().replace(/^0+/, '') });
    expect(entry.revokedAt).toBeUndefined();
    // transportFrom checks the CA, the role, the dates and that the key is the certificate's.
    expect(() => transportFrom({ tlsDir: out }, ['doctor'])).not.toThrow();
    expect(listCertificates(dir).at(-1)).toEqual(entry);
  });

  it('refuses a second live certificate for one name unless --replace, which revokes the first', async () => {
    const first = await issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 });
    expect(await usageError(issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 }))).toContain('--replace');
    const second = await issuePerson(dir, { role: 'owner', name: 'Alice', days: 30, replace: true });
    expect(second.replaced.map((e) => e.serial)).toEqual([first.entry.serial]);
    expect(second.out).toBe(first.out);
    expect(() => transportFrom({ tlsDir: second.out }, ['owner'])).not.toThrow();
    const list = await crlAt(join(dir, 'crl.pem'));
    expect([...list.serials]).toEqual([first.entry.serial]);
    expect(list.number).toBe(2n);
  });

  it('refuses to overwrite another person whose name maps to the same directory', async () => {
    await issuePerson(dir, { role: 'doctor', name: 'Jo Ann', days: 30 });
    expect(await usageError(issuePerson(dir, { role: 'doctor', name: 'jo-ann', days: 30 }))).toContain('refusing to overwrite');
  });

  it('revokes by name and by serial (any case, with colons), each into a CRL with a higher number that lists every revoked serial', async () => {
    const alice = (await issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 })).entry;
    const bob = (await issuePerson(dir, { role: 'doctor', name: 'Bob', days: 30 })).entry;
    const carol = (await issuePerson(dir, { role: 'doctor', name: 'Carol', days: 30 })).entry;

    const byName = await revokeCertificate(dir, 'Alice');
    expect(byName.entry.serial).toBe(alice.serial);
    expect(byName.crl.paths).toEqual([join(dir, 'crl.pem'), join(dir, 'c1', 'crl.pem'), join(dir, 'c2', 'crl.pem')]);
    const after1 = await crlAt(join(dir, 'c1', 'crl.pem'));
    expect([...after1.serials]).toEqual([alice.serial]);

    const colons = bob.serial.toUpperCase().replace(/(..)(?=.)/g, '$1:');
    const bySerial = await revokeCertificate(dir, colons);
    expect(bySerial.entry.name).toBe('Bob');
    const after2 = await crlAt(join(dir, 'c2', 'crl.pem'));
    expect([...after2.serials].sort()).toEqual([alice.serial, bob.serial].sort());
    expect(after2.number).toBeGreaterThan(after1.number);

    const listed = Object.fromEntries(listCertificates(dir).map((e) => [e.name, e]));
    expect(listed.Alice.revokedAt).toBeDefined();
    expect(listed.Bob.revokedAt).toBeDefined();
    expect(listed.Carol.revokedAt).toBeUndefined();
    expect(listed.Carol.serial).toBe(carol.serial);
    expect(readRegister(dir).crlNumber).toBe(Number(after2.number));
  });

  it('refuses an unknown name or serial and a second revocation, with one line each', async () => {
    await issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 });
    expect(await usageError(revokeCertificate(dir, 'Nobody'))).toContain('"Nobody"');
    expect(await usageError(revokeCertificate(dir, 'deadbeef'))).toContain('fnn certs list');
    await revokeCertificate(dir, 'Alice');
    expect(await usageError(revokeCertificate(dir, 'Alice'))).toContain('already revoked');
  });

  it('says how many owners are left, so revoking the last one can be warned of', async () => {
    expect((await revokeCertificate(dir, 'owner')).ownersLeft).toBe(0);
  });

  it('signs the CRL again from the register with a new number and the same serials', async () => {
    await issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 });
    const revoked = await revokeCertificate(dir, 'Alice');
    const again = await resignCrl(dir);
    expect(again.number).toBe(revoked.crl.number + 1);
    expect([...(await crlAt(join(dir, 'crl.pem'))).serials]).toEqual([revoked.entry.serial]);
  });

  it('refuses a CA key others may read, and a directory without the CA, changing nothing', async () => {
    chmodSync(join(dir, 'ca-key.pem'), 0o644);
    expect(await usageError(issuePerson(dir, { role: 'doctor', name: 'Alice', days: 30 }))).toContain('chmod 600');
    expect(await usageError(revokeCertificate(dir, 'doctor'))).toContain('chmod 600');
    expect(existsSync(join(dir, 'people'))).toBe(false);
    expect(listCertificates(dir)).toHaveLength(4);
    expect(await usageError(issuePerson(join(dir, 'doctor'), { role: 'doctor', name: 'Alice', days: 30 }))).toContain(
      'ca-key.pem not found',
    );
  });

  it('refuses a bad name before anything is written', async () => {
    expect(await usageError(issuePerson(dir, { role: 'doctor', name: 'a/b', days: 30 }))).toMatch(/^--name/);
    expect(listCertificates(dir)).toHaveLength(4);
  });
});
