import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueParty, loadAuthority, type Authority, type IssuedParty } from './certificates';
import { findEntry, isLive, readRegister, writeAtomically, writeRegister, type IssuedEntry, type Register } from './certificate-register';
import { signCrl } from './crl';
import { refuseReadableByOthers } from './key-files';
import { CliError } from './output';
import { CA_FILE, CA_KEY_FILE, CERT_FILE, CRL_FILE, KEY_FILE } from './tls-files';

// One certificate per person, from the CA the owner keeps (`fnn certs init`),
// and their revocation: the register (certificate-register.ts) says who holds
// what, the CRL (crl.ts) is what the daemons enforce.

/** Where `fnn certs issue` puts a person's directory unless --out says otherwise. */
export const PEOPLE_DIR = 'people';
/** The parties whose daemons enforce the CRL: it is also written into their directories, to be copied with them. */
const ENFORCING = ['c1', 'c2'] as const;

/** X.509's upper bound for a common name (ub-common-name). */
export const MAX_NAME_LENGTH = 64;
// Letters and digits of any script, and the punctuation of names; nothing that
// could end a log line, a path segment or a distinguished-name field.
const NAME = /^[\p{L}\p{M}\p{N}][\p{L}\p{M}\p{N} .'_@()-]*$/u;

/** Why `name` cannot be a person's certificate name, or undefined if it can. Never echoes the name. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0 || [...name].length > MAX_NAME_LENGTH) return `--name must be 1 to ${MAX_NAME_LENGTH} characters`;
  if (name.trim() !== name) return '--name must not start or end with a space';
  if (!NAME.test(name))
    return "--name may hold letters, digits, spaces and . ' _ @ ( ) -, starting with a letter or digit (no /, newline or control character)";
  return undefined;
}

/** The directory name for a person: their name in lower-case ASCII, or their serial's start when nothing of it is ASCII. */
export function directoryName(name: string, serial: string): string {
  const ascii = name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return ascii || `person-${serial.slice(0, 8)}`;
}

/** The CA in `dir`, its key refused if others may read it. */
export async function openAuthority(dir: string): Promise<Authority> {
  const certPath = join(dir, CA_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  for (const path of [certPath, keyPath])
    if (!existsSync(path)) throw new CliError('usage', `${path} not found: --dir is the directory \`fnn certs init\` wrote (the owner's)`);
  refuseReadableByOthers(keyPath);
  try {
    return await loadAuthority(readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'));
  } catch (error) {
    throw new CliError('usage', `${dir}: ${(error as Error).message}`);
  }
}

export interface IssueRequest {
  role: 'doctor' | 'owner';
  name: string;
  days: number;
  /** The person's directory; default DIR/people/<name>/. */
  out?: string;
  /** Revoke the person's live certificate and issue another (a lost key, a new role). */
  replace?: boolean;
}

export interface IssueResult {
  entry: IssuedEntry;
  out: string;
  replaced: IssuedEntry[];
  crl?: WrittenCrl;
}

/** A person's certificate (CN = name, OU = role) into its own directory, usable as --tls-dir. */
export async function issuePerson(dir: string, request: IssueRequest, now = new Date()): Promise<IssueResult> {
  const problem = nameProblem(request.name);
  if (problem) throw new CliError('usage', problem);
  const ca = await openAuthority(dir);
  const register = readRegister(dir);
  const live = register.entries.filter((e) => e.name === request.name && isLive(e));
  if (live.length && !request.replace)
    throw new CliError(
      'usage',
      `${request.name} already has a live certificate (serial ${live[0].serial}); --replace revokes it and issues another`,
    );
  const issued = await issueParty(ca, { role: request.role, name: request.name, hosts: [], days: request.days });
  const out = request.out ?? join(dir, PEOPLE_DIR, directoryName(request.name, issued.serial));
  const files = [CA_FILE, CERT_FILE, KEY_FILE].map((f) => join(out, f));
  if (!request.replace)
    for (const f of files) if (existsSync(f)) throw new CliError('usage', `${f} exists; refusing to overwrite a certificate or key`);
  // The register first: a certificate that exists but is not registered could never be revoked by name.
  const entry = entryOf(request.name, request.role, issued);
  for (const old of live) old.revokedAt = now.toISOString();
  register.entries.push(entry);
  const crl = live.length ? await writeCrl(dir, ca, register, now) : undefined;
  if (!crl) writeRegister(dir, register);
  mkdirSync(out, { recursive: true });
  writeAtomically(files[0], ca.cert, 0o644);
  writeAtomically(files[1], issued.cert, 0o644);
  writeAtomically(files[2], issued.key, 0o600);
  return { entry, out, replaced: live, crl };
}

export interface RevokeResult {
  entry: IssuedEntry;
  crl: WrittenCrl;
  /** Live owner certificates left: none means nobody can upload or delete until one is issued. */
  ownersLeft: number;
}

/** Revoke the certificate `nameOrSerial` names and sign a new CRL listing every revoked one. */
export async function revokeCertificate(dir: string, nameOrSerial: string, now = new Date()): Promise<RevokeResult> {
  const ca = await openAuthority(dir);
  const register = readRegister(dir);
  const entry = findEntry(register, nameOrSerial);
  if (!entry)
    throw new CliError(
      'usage',
      `no certificate named or numbered ${JSON.stringify(nameOrSerial)} was issued from ${dir} (see fnn certs list)`,
    );
  if (!isLive(entry)) throw new CliError('usage', `${entry.name}'s certificate ${entry.serial} is already revoked (${entry.revokedAt})`);
  entry.revokedAt = now.toISOString();
  const crl = await writeCrl(dir, ca, register, now);
  return { entry, crl, ownersLeft: register.entries.filter((e) => e.role === 'owner' && isLive(e)).length };
}

/** Sign the CRL again from the register (a new number): after a revocation that was cut short, or before nextUpdate. */
export async function resignCrl(dir: string, now = new Date()): Promise<WrittenCrl> {
  const ca = await openAuthority(dir);
  return writeCrl(dir, ca, readRegister(dir), now);
}

export function listCertificates(dir: string): IssuedEntry[] {
  return readRegister(dir).entries;
}

/** The parties `fnn certs init` issued, as the register's first entries, and an empty CRL for the daemons. */
export async function startRegister(dir: string, ca: Authority, parties: { role: string; issued: IssuedParty }[]): Promise<WrittenCrl> {
  const register: Register = { version: 1, crlNumber: 0, entries: parties.map((p) => entryOf(p.role, p.role, p.issued)) };
  return writeCrl(dir, ca, register);
}

export interface WrittenCrl {
  number: number;
  revoked: number;
  paths: string[];
}

/**
 * The register (with the CRL number it is about to use) and then the CRL, in
 * DIR and in C1's and C2's directories. Register first: a revocation the CRL
 * does not carry yet is finished by `fnn certs crl`; the other way round the
 * next CRL could reuse a number the daemons already hold.
 */
async function writeCrl(dir: string, ca: Authority, register: Register, now = new Date()): Promise<WrittenCrl> {
  register.crlNumber += 1;
  const revoked = register.entries.filter((e) => !isLive(e)).map((e) => ({ serial: e.serial, revokedAt: new Date(e.revokedAt!) }));
  const pem = await signCrl(ca.signer, revoked, BigInt(register.crlNumber), now);
  writeRegister(dir, register);
  const paths = [dir, ...ENFORCING.map((p) => join(dir, p)).filter((d) => existsSync(d))].map((d) => join(d, CRL_FILE));
  for (const path of paths) writeAtomically(path, pem, 0o644);
  return { number: register.crlNumber, revoked: revoked.length, paths };
}

function entryOf(name: string, role: string, issued: IssuedParty): IssuedEntry {
  return { name, role, serial: issued.serial, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString() };
}
