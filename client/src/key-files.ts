import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PublicKey, RecordKey, SecretKey, keyFromHex, keyToHex } from '@fnn/shared';
import { CliError } from './output';

// The key directory, as `fnn keygen` writes it:
//   public-key.json     C2's Paillier public key (everyone)
//   c2-secret.json      C2's Paillier secret key: C2, and the owner who made it (mode 0600)
//   c1-public-key.json  C1's Paillier public key (everyone): the fast protocol's replica at C2 is under it
//   c1-secret.json      C1's Paillier secret key: C1, and the owner (mode 0600)
//   record.key          the symmetric key k: the owner and authorised doctors (mode 0600)
export const PUBLIC_KEY_FILE = 'public-key.json';
export const SECRET_KEY_FILE = 'c2-secret.json';
export const C1_PUBLIC_KEY_FILE = 'c1-public-key.json';
export const C1_SECRET_KEY_FILE = 'c1-secret.json';
export const RECORD_KEY_FILE = 'record.key';

export interface KeyPairFiles {
  publicKey: PublicKey;
  secretKey: SecretKey;
}

export function writeKeyDirectory(dir: string, c2: KeyPairFiles, c1: KeyPairFiles, recordKey: Buffer): void {
  mkdirSync(dir, { recursive: true });
  for (const f of [PUBLIC_KEY_FILE, SECRET_KEY_FILE, C1_PUBLIC_KEY_FILE, C1_SECRET_KEY_FILE, RECORD_KEY_FILE])
    if (existsSync(join(dir, f))) throw new CliError('usage', `${join(dir, f)} exists; refusing to overwrite a key`);
  const json = (o: object) => JSON.stringify(o, null, 2) + '\n';
  writeFileSync(join(dir, PUBLIC_KEY_FILE), json(c2.publicKey.toJSON()), { mode: 0o644 });
  writeFileSync(join(dir, C1_PUBLIC_KEY_FILE), json(c1.publicKey.toJSON()), { mode: 0o644 });
  writeSecret(join(dir, SECRET_KEY_FILE), json(c2.secretKey.toJSON()));
  writeSecret(join(dir, C1_SECRET_KEY_FILE), json(c1.secretKey.toJSON()));
  writeSecret(join(dir, RECORD_KEY_FILE), keyToHex(recordKey) + '\n');
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // in case the umask interfered
}

export function loadPublicKey(dir: string): PublicKey {
  return PublicKey.fromJSON(JSON.parse(readKeyFile(dir, PUBLIC_KEY_FILE, false)));
}

export function loadSecretKey(dir: string, publicKey = loadPublicKey(dir)): SecretKey {
  return SecretKey.fromJSON(JSON.parse(readKeyFile(dir, SECRET_KEY_FILE, true)), publicKey);
}

/** C1's key pair: the fast protocol's second replica (at C2) is encrypted under it. */
export function loadC1PublicKey(dir: string): PublicKey {
  return PublicKey.fromJSON(JSON.parse(readKeyFile(dir, C1_PUBLIC_KEY_FILE, false)));
}

export function loadC1SecretKey(dir: string, publicKey = loadC1PublicKey(dir)): SecretKey {
  return SecretKey.fromJSON(JSON.parse(readKeyFile(dir, C1_SECRET_KEY_FILE, true)), publicKey);
}

export function hasC1SecretKey(dir: string): boolean {
  return existsSync(join(dir, C1_SECRET_KEY_FILE));
}

export function hasSecretKey(dir: string): boolean {
  return existsSync(join(dir, SECRET_KEY_FILE));
}

export function loadRecordKey(dir: string): RecordKey {
  return new RecordKey(keyFromHex(readKeyFile(dir, RECORD_KEY_FILE, true).trim()));
}

/** Read a key file; a secret one must not be readable by group or others. */
function readKeyFile(dir: string, name: string, secret: boolean): string {
  const path = join(dir, name);
  if (!existsSync(path)) throw new CliError('usage', `${path} not found (run \`fnn keygen --out ${dir}\`?)`);
  if (secret) refuseReadableByOthers(path);
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new CliError('usage', `${path} could not be read`);
  }
}

/** A secret key file (Paillier, record key, TLS private key) must not be readable by group or others. */
export function refuseReadableByOthers(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new CliError('usage', `${path} has mode ${mode.toString(8)}; a secret key must be 0600 (chmod 600 ${path})`);
}
