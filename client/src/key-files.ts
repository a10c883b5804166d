import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PublicKey, RecordKey, SecretKey, keyFromHex, keyToHex } from '@fnn/shared';
import { CliError } from './output';

// The keys, as `fnn keygen --out DIR` writes them: one directory per party,
// each holding only what that party reads, so the owner copies a directory to
// a host instead of picking files (a secret copied to the wrong host is a
// leak that cannot be taken back).
//   public-key.json     C2's Paillier public key
//   c2-secret.json      C2's Paillier secret key (mode 0600)
//   c1-public-key.json  C1's Paillier public key: the fast protocol's replica at C2 is under it
//   c1-secret.json      C1's Paillier secret key (mode 0600)
//   record.key          the symmetric key k (mode 0600)
export const PUBLIC_KEY_FILE = 'public-key.json';
export const SECRET_KEY_FILE = 'c2-secret.json';
export const C1_PUBLIC_KEY_FILE = 'c1-public-key.json';
export const C1_SECRET_KEY_FILE = 'c1-secret.json';
export const RECORD_KEY_FILE = 'record.key';

export type KeyParty = 'c1' | 'c2' | 'owner' | 'doctor';

/** What each party's directory holds: what its commands load, nothing more. */
export const PARTY_KEY_FILES: Readonly<Record<KeyParty, readonly string[]>> = {
  // C1 computes under C2's key and opens what C2 sends under its own.
  c1: [PUBLIC_KEY_FILE, C1_PUBLIC_KEY_FILE, C1_SECRET_KEY_FILE],
  // C2 decrypts under its key and holds the replica under C1's.
  c2: [PUBLIC_KEY_FILE, C1_PUBLIC_KEY_FILE, SECRET_KEY_FILE],
  // The owner encrypts under both and seals records with k; neither server's secret.
  owner: [PUBLIC_KEY_FILE, C1_PUBLIC_KEY_FILE, RECORD_KEY_FILE],
  // A doctor encrypts the query under C2's key and opens the answer with k.
  doctor: [PUBLIC_KEY_FILE, RECORD_KEY_FILE],
};
export const KEY_PARTIES = Object.keys(PARTY_KEY_FILES) as KeyParty[];
const SECRET_FILES = new Set([SECRET_KEY_FILE, C1_SECRET_KEY_FILE, RECORD_KEY_FILE]);

export interface KeyPairFiles {
  publicKey: PublicKey;
  secretKey: SecretKey;
}

/**
 * DIR/c1, DIR/c2, DIR/owner, DIR/doctor. Refuses if any of them exists (or
 * DIR holds keys of the single-directory layout), and leaves nothing behind
 * if a write fails: a half-written key set is worse than none.
 */
export function writeKeyDirectory(dir: string, c2: KeyPairFiles, c1: KeyPairFiles, recordKey: Buffer): void {
  for (const f of [PUBLIC_KEY_FILE, SECRET_KEY_FILE, C1_PUBLIC_KEY_FILE, C1_SECRET_KEY_FILE, RECORD_KEY_FILE])
    if (existsSync(join(dir, f))) throw new CliError('usage', `${join(dir, f)} exists; refusing to overwrite a key`);
  for (const party of KEY_PARTIES)
    if (existsSync(join(dir, party))) throw new CliError('usage', `${join(dir, party)} exists; refusing to overwrite a key`);
  const json = (o: object) => JSON.stringify(o, null, 2) + '\n';
  const content: Record<string, string> = {
    [PUBLIC_KEY_FILE]: json(c2.publicKey.toJSON()),
    [C1_PUBLIC_KEY_FILE]: json(c1.publicKey.toJSON()),
    [SECRET_KEY_FILE]: json(c2.secretKey.toJSON()),
    [C1_SECRET_KEY_FILE]: json(c1.secretKey.toJSON()),
    [RECORD_KEY_FILE]: keyToHex(recordKey) + '\n',
  };
  mkdirSync(dir, { recursive: true });
  const made: string[] = [];
  try {
    for (const party of KEY_PARTIES) {
      const partyDir = join(dir, party);
      mkdirSync(partyDir, { mode: 0o700 });
      made.push(partyDir);
      for (const name of PARTY_KEY_FILES[party]) writeKeyFile(join(partyDir, name), content[name], SECRET_FILES.has(name));
    }
  } catch (error) {
    for (const partyDir of made) rmSync(partyDir, { recursive: true, force: true });
    throw error;
  }
}

function writeKeyFile(path: string, content: string, secret: boolean): void {
  writeFileSync(path, content, { mode: secret ? 0o600 : 0o644, flag: 'wx' });
  if (secret) chmodSync(path, 0o600); // in case the umask interfered
}

/**
 * Where `name` is for `party` given --keys DIR: DIR/name (the party's own
 * directory, as copied to its host), else DIR/<party>/name (the whole keygen
 * output on one machine). Undefined when neither exists.
 */
export function findKeyFile(dir: string, name: string, party: KeyParty): string | undefined {
  for (const path of [join(dir, name), join(dir, party, name)]) if (existsSync(path)) return path;
  return undefined;
}

export function loadPublicKey(dir: string, party: KeyParty): PublicKey {
  return PublicKey.fromJSON(JSON.parse(readKeyFile(dir, PUBLIC_KEY_FILE, party)));
}

export function loadSecretKey(dir: string, party: KeyParty, publicKey = loadPublicKey(dir, party)): SecretKey {
  return SecretKey.fromJSON(JSON.parse(readKeyFile(dir, SECRET_KEY_FILE, party)), publicKey);
}

/** C1's key pair: the fast protocol's second replica (at C2) is encrypted under it. */
export function loadC1PublicKey(dir: string, party: KeyParty): PublicKey {
  return PublicKey.fromJSON(JSON.parse(readKeyFile(dir, C1_PUBLIC_KEY_FILE, party)));
}

export function loadC1SecretKey(dir: string, party: KeyParty, publicKey = loadC1PublicKey(dir, party)): SecretKey {
  return SecretKey.fromJSON(JSON.parse(readKeyFile(dir, C1_SECRET_KEY_FILE, party)), publicKey);
}

export function loadRecordKey(dir: string, party: KeyParty): RecordKey {
  return new RecordKey(keyFromHex(readKeyFile(dir, RECORD_KEY_FILE, party).trim()));
}

/**
 * A server's secret key where the owner may have it: beside the owner's keys
 * (copied there for speed), or in the server's directory of a keygen output
 * the owner still holds. With it, encryption takes the ~3x faster CRT path.
 */
export function ownerHeldSecret(dir: string, name: typeof SECRET_KEY_FILE | typeof C1_SECRET_KEY_FILE): string | undefined {
  return findKeyFile(dir, name, 'owner') ?? findKeyFile(dir, name, name === SECRET_KEY_FILE ? 'c2' : 'c1');
}

export function loadSecretKeyAt(path: string, publicKey: PublicKey): SecretKey {
  refuseReadableByOthers(path);
  return SecretKey.fromJSON(JSON.parse(readFileSync(path, 'utf8')), publicKey);
}

/** Read a key file; a secret one must not be readable by group or others. */
function readKeyFile(dir: string, name: string, party: KeyParty): string {
  const path = findKeyFile(dir, name, party);
  if (!path) throw new CliError('usage', missingKey(dir, name, party));
  if (SECRET_FILES.has(name)) refuseReadableByOthers(path);
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new CliError('usage', `${path} could not be read`);
  }
}

/**
 * What to do about a missing key: never "run fnn keygen" except to the
 * owner's first setup, since a new key set cannot open what the old one sealed.
 */
export function missingKey(dir: string, name: string, party: KeyParty): string {
  const where = `${join(dir, name)} not found (nor ${join(dir, party, name)})`;
  if (party === 'doctor')
    return name === RECORD_KEY_FILE
      ? `${where}. Ask the owner for record.key (the doctor/ directory of their \`fnn keygen\`) and pass its directory as --keys`
      : `${where}. Ask the owner for the doctor/ directory of their \`fnn keygen\` and pass it as --keys`;
  if (party === 'owner')
    return `${where}. Pass the owner/ directory of your \`fnn keygen --out DIR\` as --keys (a new keygen cannot open records already stored)`;
  return `${where}. Copy the ${party}/ directory of the owner's \`fnn keygen\` to this host and pass it as --keys`;
}

/** A secret key file (Paillier, record key, TLS private key) must not be readable by group or others. */
export function refuseReadableByOthers(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new CliError('usage', `${path} has mode ${mode.toString(8)}; a secret key must be 0600 (chmod 600 ${path})`);
}
