import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, generateSymmetricKey } from '@fnn/shared';
import {
  KEY_PARTIES,
  loadC1SecretKey,
  loadPublicKey,
  loadRecordKey,
  loadSecretKey,
  ownerHeldSecret,
  PARTY_KEY_FILES,
  SECRET_KEY_FILE,
  writeKeyDirectory,
} from './key-files';
import { CliError } from './output';

// `fnn keygen`'s output: one directory per party with only what it reads, and
// --keys finding a party's file in its own directory or in the whole output.

let work: string;
let keys: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-keys-'));
  keys = join(work, 'keys');
  const [c2, c1] = await Promise.all([generateKeyPair(256), generateKeyPair(256)]);
  writeKeyDirectory(keys, c2, c1, generateSymmetricKey());
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const failure = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error as CliError;
  }
  throw new Error('it did not fail');
};

describe('the key directory per party', () => {
  it('writes c1/, c2/, owner/ and doctor/, each with exactly its files, the secrets mode 0600', () => {
    expect(readdirSync(keys).sort()).toEqual(['c1', 'c2', 'doctor', 'owner']);
    for (const party of KEY_PARTIES) {
      expect(readdirSync(join(keys, party)).sort(), party).toEqual([...PARTY_KEY_FILES[party]].sort());
      for (const file of PARTY_KEY_FILES[party]) {
        const mode = statSync(join(keys, party, file)).mode & 0o777;
        expect(mode, `${party}/${file}`).toBe(file.endsWith('.json') && !file.includes('secret') ? 0o644 : 0o600);
      }
    }
    // No party but the server itself holds a server's secret; the servers never hold k.
    expect(existsSync(join(keys, 'owner', 'c2-secret.json'))).toBe(false);
    expect(existsSync(join(keys, 'c1', 'record.key'))).toBe(false);
    expect(existsSync(join(keys, 'c2', 'c1-secret.json'))).toBe(false);
  });

  it('refuses to write over an existing key set, and writes nothing', async () => {
    const [c2, c1] = await Promise.all([generateKeyPair(256), generateKeyPair(256)]);
    const before = statSync(join(keys, 'c2', SECRET_KEY_FILE)).mtimeMs;
    const error = failure(() => writeKeyDirectory(keys, c2, c1, generateSymmetricKey()));
    expect(error.kind).toBe('usage');
    expect(error.message).toMatch(/exists; refusing to overwrite a key/);
    expect(statSync(join(keys, 'c2', SECRET_KEY_FILE)).mtimeMs).toBe(before);
  });

  it("finds a party's key in its own directory and in the whole keygen output alike", () => {
    const pk = loadPublicKey(join(keys, 'c2'), 'c2');
    expect(loadSecretKey(keys, 'c2').publicKey.fingerprint()).toBe(pk.fingerprint());
    expect(loadSecretKey(join(keys, 'c2'), 'c2').publicKey.fingerprint()).toBe(pk.fingerprint());
    expect(loadC1SecretKey(keys, 'c1').publicKey.bits).toBe(256);
    expect(loadRecordKey(keys, 'doctor').lookupTag('x')).toEqual(loadRecordKey(join(keys, 'owner'), 'owner').lookupTag('x'));
  });

  it('tells a doctor without record.key to ask the owner for it, not to make new keys', () => {
    const error = failure(() => loadRecordKey(join(keys, 'c1'), 'doctor'));
    expect(error.kind).toBe('usage');
    expect(error.message).toMatch(/record\.key not found .*\. Ask the owner for record\.key/);
    expect(error.message).not.toMatch(/fnn keygen --out/);
  });

  it('tells a server without its secret which directory to copy to its host', () => {
    expect(failure(() => loadSecretKey(join(keys, 'doctor'), 'c2')).message).toMatch(
      /c2-secret\.json not found .*\. Copy the c2\/ directory of the owner's `fnn keygen` to this host and pass it as --keys$/,
    );
  });

  it("uses a server's secret the owner still holds (the whole output on one machine), and none it does not", () => {
    expect(ownerHeldSecret(keys, SECRET_KEY_FILE)).toBe(join(keys, 'c2', SECRET_KEY_FILE));
    expect(ownerHeldSecret(join(keys, 'owner'), SECRET_KEY_FILE)).toBeUndefined();
  });

  it('refuses a secret readable by others', () => {
    const secret = join(keys, 'doctor', 'record.key');
    chmodSync(secret, 0o640);
    try {
      expect(failure(() => loadRecordKey(keys, 'doctor')).message).toMatch(/has mode 640; a secret key must be 0600/);
    } finally {
      chmodSync(secret, 0o600);
    }
  });
});
