import { describe, expect, it } from 'vitest';
import { RecordKey, generateSymmetricKey, keyFromHex, keyToHex } from './symmetric';

const ID_ERROR = 'record identifier could not be decrypted: wrong key or corrupted';

describe('symmetric key', () => {
  it('generates 32 random bytes, different each time', () => {
    const a = generateSymmetricKey();
    expect(a).toHaveLength(32);
    expect(a.equals(generateSymmetricKey())).toBe(false);
  });

  it('round-trips through hex', () => {
    const k = generateSymmetricKey();
    const hex = keyToHex(k);
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    expect(keyFromHex(hex).equals(k)).toBe(true);
    expect(keyFromHex(hex.toUpperCase()).equals(k)).toBe(true);
  });

  it('rejects keys that are not exactly 32 bytes', () => {
    expect(() => keyToHex(Buffer.alloc(31))).toThrow(/exactly 32 bytes/);
    expect(() => keyFromHex('ab'.repeat(31))).toThrow(/exactly 32 bytes/);
    expect(() => keyFromHex('ab'.repeat(33))).toThrow(/exactly 32 bytes/);
    expect(() => keyFromHex('zz'.repeat(32))).toThrow(/exactly 32 bytes/);
    expect(() => new RecordKey(Buffer.alloc(16))).toThrow(/exactly 32 bytes/);
  });
});

describe('record identifiers', () => {
  const key = new RecordKey(generateSymmetricKey());

  it('encryptId / decryptId round-trip, including unicode and empty IDs', () => {
    for (const id of ['LIDC-IDRI-0001/slice-42', '', 'patient-ü-東京']) expect(key.decryptId(key.encryptId(id))).toBe(id);
  });

  it('encrypting the same ID twice gives different blobs (random nonce)', () => {
    const a = key.encryptId('same');
    const b = key.encryptId('same');
    expect(a.equals(b)).toBe(false);
    expect(a).toHaveLength(12 + 4 + 16);
  });

  it('decryptId with the wrong key fails with the clear message', () => {
    const other = new RecordKey(generateSymmetricKey());
    expect(() => other.decryptId(key.encryptId('id-7'))).toThrow(ID_ERROR);
  });

  it('decryptId of a tampered or truncated blob fails with the clear message', () => {
    const blob = key.encryptId('id-7');
    for (const i of [0, 12, blob.length - 1]) {
      const bad = Buffer.from(blob);
      bad[i] ^= 1;
      expect(() => key.decryptId(bad)).toThrow(ID_ERROR);
    }
    expect(() => key.decryptId(blob.subarray(0, 20))).toThrow(ID_ERROR);
    expect(() => key.decryptId(Buffer.alloc(0))).toThrow(ID_ERROR);
  });

  it('the same key bytes give a RecordKey that decrypts (derivation is deterministic)', () => {
    const k = generateSymmetricKey();
    expect(new RecordKey(Buffer.from(k)).decryptId(new RecordKey(k).encryptId('x'))).toBe('x');
  });
});

describe('lookup tags', () => {
  const k = generateSymmetricKey();
  const key = new RecordKey(k);

  it('are 32 bytes and deterministic for the same key and ID', () => {
    const t = key.lookupTag('id-1');
    expect(t).toHaveLength(32);
    expect(t.equals(key.lookupTag('id-1'))).toBe(true);
    expect(t.equals(new RecordKey(Buffer.from(k)).lookupTag('id-1'))).toBe(true);
  });

  it('differ between IDs and between keys', () => {
    expect(key.lookupTag('id-1').equals(key.lookupTag('id-2'))).toBe(false);
    expect(key.lookupTag('id-1').equals(new RecordKey(generateSymmetricKey()).lookupTag('id-1'))).toBe(false);
  });
});

describe('seal / open', () => {
  const key = new RecordKey(generateSymmetricKey());

  it('round-trips bytes with and without associated data', () => {
    const data = Buffer.from([0, 1, 2, 250, 255]);
    expect(key.open(key.seal(data)).equals(data)).toBe(true);
    expect(key.open(key.seal(data, 'image:7'), 'image:7').equals(data)).toBe(true);
    expect(key.open(key.seal(Buffer.alloc(0))).length).toBe(0);
  });

  it('fails on wrong associated data, wrong key or tampering', () => {
    const blob = key.seal(Buffer.from('pixels'), 'image:7');
    expect(() => key.open(blob, 'image:8')).toThrow(/could not be opened/);
    expect(() => new RecordKey(generateSymmetricKey()).open(blob, 'image:7')).toThrow(/could not be opened/);
    const bad = Buffer.from(blob);
    bad[bad.length - 1] ^= 0x80;
    expect(() => key.open(bad, 'image:7')).toThrow(/could not be opened/);
  });

  it('keeps sealed payloads and record identifiers apart', () => {
    expect(() => key.decryptId(key.seal(Buffer.from('abc')))).toThrow(ID_ERROR);
    expect(() => key.open(key.encryptId('abc'))).toThrow(/could not be opened/);
  });
});
