import { beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { generateKeyPair, isFnnError, layoutsToWire, maxSealedImageBytes, WireCodec, type PublicKey } from '@fnn/shared';
import { MAX_SLOTS_PER_CALL, RequestChecks } from './requests';

// C1's request checks without a daemon: each refusal is an invalid-input error
// with its one-line reason, and a valid request becomes the store's values.
// (The same requests over gRPC, with the codes and nothing stored, are
// malformed-requests.test.ts.)

let pk2: PublicKey;
let other: PublicKey;
let checks: RequestChecks;
const COLLECTION = { width: 4, height: 4 };

beforeAll(async () => {
  pk2 = (await generateKeyPair(512)).publicKey;
  other = (await generateKeyPair(512)).publicKey;
  checks = new RequestChecks(pk2, new WireCodec(pk2.cipherBytes));
});

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isFnnError(error) && error.kind === 'invalid-input') return error.message;
    throw error;
  }
  throw new Error('accepted');
}

const fastPart: wire.FastQuery = {
  distanceShare: [],
  boundShare: [],
  distanceConstant: Buffer.alloc(0),
  boundConstant: Buffer.alloc(0),
  coarseShare: [],
  coarseConstant: Buffer.alloc(0),
  shareTicket: '',
};
const query = (over: Partial<wire.QueryRequest> = {}): wire.QueryRequest => ({
  tag: 't',
  k: 1,
  header: { keyFingerprint: pk2.fingerprint(), ...COLLECTION },
  protocol: { $case: 'fast', value: fastPart },
  ...over,
});

const upload = (over: Partial<wire.UploadRequest> = {}): wire.UploadRequest => ({
  keyFingerprint: pk2.fingerprint(),
  width: 4,
  height: 4,
  maxValue: 255,
  layouts: layoutsToWire(['packed']),
  settings: { offset: -1024, fit: wire.Fit.FIT_CROP },
  group: { group: 0, baseVersion: Buffer.alloc(0), version: Buffer.alloc(16, 1), columns: undefined },
  records: [
    {
      encryptedId: Buffer.alloc(40, 1),
      lookupTag: Buffer.alloc(32, 2),
      pixels: [],
      sum: Buffer.alloc(0),
      spread: Buffer.alloc(0),
      sealedImage: Buffer.alloc(60, 3),
      slot: 0,
    },
  ],
  ...over,
});

describe('RequestChecks.query: what every protocol shares', () => {
  it('names the module of the oneof case, and reads k = 0 as k = 1', () => {
    const checked = checks.query(query({ k: 0 }), COLLECTION);
    expect([checked.protocol.name, checked.k, checked.query.$case]).toEqual(['fast', 1, 'fast']);
    const paper = checks.query(
      query({
        k: 3,
        protocol: {
          $case: 'bf',
          value: { negatedPixels: [], negatedSum: Buffer.alloc(0), negatedSpread: Buffer.alloc(0), spread: Buffer.alloc(0) },
        },
      }),
      COLLECTION,
    );
    expect([paper.protocol.name, paper.k]).toEqual(['bf', 3]);
  });

  it.each([
    ['a query naming no protocol', () => query({ protocol: undefined }), 'the query names no protocol'],
    ['k above 100', () => query({ k: 101 }), 'k above 100 is not supported'],
    ['no header', () => query({ header: undefined }), 'query without its image size and key'],
    [
      'another key',
      () => query({ header: { keyFingerprint: other.fingerprint(), ...COLLECTION } }),
      'encrypted under another Paillier key than this collection',
    ],
    [
      'another image size',
      () => query({ header: { keyFingerprint: pk2.fingerprint(), width: 5, height: 5 } }),
      "query is 5x5, the collection's images are 4x4",
    ],
  ])('refuses %s', (_what, build, reason) => {
    expect(refusal(() => checks.query(build(), COLLECTION))).toBe(reason);
  });

  it('refuses any query of an empty collection', () => {
    expect(refusal(() => checks.query(query(), undefined))).toBe('the collection is empty');
  });
});

describe('RequestChecks.upload, delete, allocateSlots', () => {
  it("turns a packed-only upload into the store's shape, change and records (no paper layout)", () => {
    const { shape, change, records } = checks.upload(upload());
    expect(shape).toEqual({ width: 4, height: 4, maxValue: 255, layouts: ['packed'], settings: { offset: -1024, fit: 'crop' } });
    expect(checks.upload(upload({ settings: undefined })).shape.settings, "an older owner's upload names no settings").toBeUndefined();
    expect([change.group, change.version.length, change.columns]).toEqual([0, 16, undefined]);
    expect(records.map((r) => [r.slot, r.lookupTag.length, r.paper])).toEqual([[0, 32, undefined]]);
  });

  it.each([
    ['another key', () => upload({ keyFingerprint: other.fingerprint() }), 'encrypted under another Paillier key than this collection'],
    [
      'no packed layout',
      () => upload({ layouts: layoutsToWire(['paper']) }),
      'an upload must carry the packed layout (every group is packed)',
    ],
    ['an unknown layout', () => upload({ layouts: [wire.Layout.LAYOUT_PACKED, 9 as wire.Layout] }), 'unknown record layout'],
    ['no records', () => upload({ records: [] }), 'no records to upload'],
    ['an offset beyond 2^20', () => upload({ settings: { offset: (1 << 20) + 1, fit: wire.Fit.FIT_REFUSE } }), 'offset beyond ±1048576'],
    ['no fit rule', () => upload({ settings: { offset: 0, fit: wire.Fit.FIT_UNSPECIFIED } }), 'unknown fit rule'],
    ['no group', () => upload({ group: undefined }), 'an upload names no group'],
    [
      'a 31-byte lookup tag',
      () => upload({ records: [{ ...upload().records[0], lookupTag: Buffer.alloc(31) }] }),
      'record 1: lookup tag must be 32 bytes',
    ],
    [
      'the paper layout declared, no pixels sent',
      () => upload({ layouts: layoutsToWire(['packed', 'paper']) }),
      'record 1 has 0 pixels, expected 16',
    ],
    [
      'pixels sent, the paper layout not declared',
      () => upload({ records: [{ ...upload().records[0], sum: Buffer.alloc(64) }] }),
      "record 1 carries the paper's layout, but the upload says it has none",
    ],
    [
      'a sealed image too large for 4x4',
      () => upload({ records: [{ ...upload().records[0], sealedImage: Buffer.alloc(maxSealedImageBytes(16) + 1) }] }),
      'record 1: sealed image has an impossible size',
    ],
  ])('refuses an upload with %s', (_what, build, reason) => {
    expect(refusal(() => checks.upload(build()))).toBe(reason);
  });

  it('refuses a delete naming nothing, and allocations of none or too many slots', () => {
    expect(refusal(() => checks.delete({ lookupTags: [], groups: [] }))).toBe('no records named');
    const tags = (n: number) => Array.from({ length: n }, () => Buffer.alloc(32));
    const allocate = (n: number) => () => checks.allocateSlots({ lookupTags: tags(n), width: 4, height: 4, maxValue: 255 });
    expect(refusal(allocate(0))).toBe(`name between 1 and ${MAX_SLOTS_PER_CALL} records`);
    expect(refusal(allocate(MAX_SLOTS_PER_CALL + 1))).toBe(`name between 1 and ${MAX_SLOTS_PER_CALL} records`);
    expect(allocate(MAX_SLOTS_PER_CALL)().tags).toHaveLength(MAX_SLOTS_PER_CALL);
  });
});
