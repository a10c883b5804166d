import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalSerial } from '@fnn/shared';
import { CliError } from './output';

// The register of every certificate the deployment CA issued (DIR/issued.json,
// beside ca-key.pem, the owner's): who holds which serial, until when, and
// whether it is revoked. The CRL is made from it, so it must never be left
// half-written: it is replaced whole (a temporary file, then a rename).

export const REGISTER_FILE = 'issued.json';

export interface IssuedEntry {
  /** The subject's CN: a person's name, or a server's role for the ones `fnn certs init` issues. */
  name: string;
  role: string;
  /** Lower-case hex without leading zeros. */
  serial: string;
  notBefore: string;
  notAfter: string;
  /** ISO time it was revoked; absent while it is live. */
  revokedAt?: string;
}

export interface Register {
  version: 1;
  /** The number of the last CRL signed from this register (0: none yet). */
  crlNumber: number;
  entries: IssuedEntry[];
}

/** The register of the CA in `dir`; an empty one when there is none yet (a directory from before registers). */
export function readRegister(dir: string): Register {
  const path = join(dir, REGISTER_FILE);
  if (!existsSync(path)) return { version: 1, crlNumber: 0, entries: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new CliError('usage', `${path} is not the register \`fnn certs\` writes (not JSON)`);
  }
  const register = parsed as Partial<Register>;
  if (register.version !== 1 || !Number.isSafeInteger(register.crlNumber) || !Array.isArray(register.entries))
    throw new CliError('usage', `${path} is not the register \`fnn certs\` writes`);
  return register as Register;
}

export function writeRegister(dir: string, register: Register): void {
  writeAtomically(join(dir, REGISTER_FILE), JSON.stringify(register, null, 2) + '\n', 0o600);
}

/** Write `path` whole or not at all: a reader (a daemon polling a CRL) never sees half a file. */
export function writeAtomically(path: string, content: string, mode: number): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode); // in case the umask interfered
  renameSync(temporary, path);
}

export const isLive = (e: IssuedEntry) => e.revokedAt === undefined;

/**
 * The entry `nameOrSerial` names: a live certificate of that name, else the
 * certificate with that serial (hex, any case, colons allowed). Undefined if
 * neither; a name held by revoked certificates only is returned as revoked.
 */
export function findEntry(register: Register, nameOrSerial: string): IssuedEntry | undefined {
  const byName = register.entries.filter((e) => e.name === nameOrSerial);
  const live = byName.find(isLive);
  if (live) return live;
  const hex = nameOrSerial.replace(/:/g, '').toLowerCase();
  const bySerial = /^[0-9a-f]+$/.test(hex) ? register.entries.find((e) => e.serial === normalSerial(hex)) : undefined;
  return bySerial ?? byName.at(-1);
}
