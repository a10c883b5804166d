import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as wire from '@fnn/proto';
import {
  cipherToBytes,
  decodePng,
  encryptQuery,
  maxSealedImageBytes,
  packingParams,
  plaintextNearest,
  residueToBytes,
  shareQuery,
  WireCodec,
} from '@fnn/shared';
import { jsonLines, runCli, type Daemon } from './harness';
import {
  cliQuery,
  connect,
  counts,
  grpcError,
  INSECURE,
  makeKeys,
  ownerDeleteRequest,
  ownerGroupUpload,
  randomPixels,
  rawStream,
  rawUnary,
  rpc,
  startC1,
  startC2,
  writeImage,
  type Connections,
  type Keys,
} from './testing/deployment';

// C1's Database service against malformed input, on the real daemons (the
// `fnn` binary): every case is refused with its gRPC code, C1 and C2 still
// answer Status afterwards (no crash), and neither database changed. The
// cases of server-c1/src/malformed-requests.test.ts are not repeated here; these add invalid
// ciphertexts in every field (a record's paper layout, a group's packed
// columns and constants, a delete's re-encrypted group), group changes that
// do not fit (versions, stale base versions, other groups), bytes that are
// not protobuf, fields of the wrong wire type, empty and oversized messages
// and unknown IDs. The valid requests they start from are the real owner's
// (CollectionWriter), captured before they were sent.

const W = 4;
const H = 4;
const D = W * H;
let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let c: Connections;
const stored: { id: string; pixels: Uint16Array }[] = [];
/** A new record into the partly filled group 1 (5 records, groups of 4): its Upload and C2's group. */
let spare: Awaited<ReturnType<typeof ownerGroupUpload>>;
/** The delete of one stored record: its group re-encrypted without it. */
let del: Awaited<ReturnType<typeof ownerDeleteRequest>>;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-malformed-c1-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
  c = connect(c1.address, c2.address);
  const dir = join(work, 'images');
  mkdirSync(dir);
  for (let i = 0; i < 5; i++) {
    const pixels = randomPixels(D);
    writeImage(join(dir, `scan-${i}.png`), pixels, W, H);
    stored.push({ id: `scan-${i}.png`, pixels });
  }
  const up = await runCli(['upload', dir, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json']);
  expect(up.code, up.stderr).toBe(0);
  spare = await ownerGroupUpload(c, keys, 'spare', randomPixels(D), W, H);
  del = await ownerDeleteRequest(c, keys, [stored[0].id]);
  // The bases are what they should be, so each refusal is due to its one corruption.
  expect(spare.upload.group!.baseVersion.length, 'the spare joins a group with members').toBe(16);
  expect(spare.upload.group!.group, 'the spare joins group 1').toBe(1);
  expect(
    del.request.groups.map((g) => [g.group, g.columns !== undefined]),
    'the delete re-encrypts group 0, which keeps members',
  ).toEqual([[0, true]]);
});

afterAll(async () => {
  c?.close();
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ----- values that are not ciphertexts under C2's key -----

const bytes = (x: bigint, width = keys.pk.cipherBytes) => Buffer.from(cipherToBytes(x, width));
const N = () => keys.pk.n;
const secret = () => keys.sk.toJSON() as unknown as { p: string; q: string };
/** [name, bytes]: each is refused wherever a ciphertext under C2's key is expected. */
const NOT_CIPHERTEXTS: [string, () => Buffer][] = [
  ['0', () => bytes(0n)],
  ['N (not coprime with N)', () => bytes(N())],
  ['q, a factor of N', () => bytes(BigInt(secret().q))],
  ['2p (shares p with N)', () => bytes(2n * BigInt(secret().p))],
  ['N^2', () => bytes(keys.pk.n2)],
  ['N^2 + 1 (above N^2)', () => bytes(keys.pk.n2 + 1n)],
  ['empty bytes', () => Buffer.alloc(0)],
  ['1 MiB of bytes', () => Buffer.alloc(1 << 20, 0x01)],
];

interface BadCase {
  name: string;
  code: Code;
  run: () => Promise<unknown>;
  /** The error's details must match (default: any non-empty reason that is not "internal error"). */
  details?: RegExp;
}

const upload = (req: wire.UploadRequest) => rpc<wire.UploadReply>((m, o, cb) => c.db.upload(req, m, o, cb));
const query = (req: wire.QueryRequest) => rpc<wire.QueryReply>((m, o, cb) => c.db.query(req, m, o, cb));
const removeRequest = (req: wire.DeleteRequest) => rpc<wire.DeleteReply>((m, o, cb) => c.db.delete(req, m, o, cb));
/** A delete naming these tags and no group change (C1 looks the tags up first). */
const remove = (lookupTags: Buffer[]) => removeRequest({ lookupTags, groups: [] });
const allocate = (lookupTags: Buffer[], shape: Partial<Omit<wire.AllocateSlotsRequest, 'lookupTags'>> = {}) =>
  rpc<wire.SlotAssignments>((m, o, cb) => c.db.allocateSlots({ lookupTags, width: W, height: H, maxValue: 255, ...shape }, m, o, cb));
const getGroup = (group: number) => rpc<wire.GroupContents>((m, o, cb) => c.db.getGroup({ group }, m, o, cb));

/** The spare record with one field changed. */
function record(over: (r: wire.EncryptedRecord) => Partial<wire.EncryptedRecord>): wire.UploadRequest {
  const r = spare.upload.records[0];
  return { ...spare.upload, records: [{ ...r, ...over(r) }] };
}
/** The spare's upload with its group change changed. */
const changeWith = (over: (g: wire.GroupChange) => Partial<wire.GroupChange>): wire.UploadRequest => ({
  ...spare.upload,
  group: { ...spare.upload.group!, ...over(spare.upload.group!) },
});
/** ... with the group's packed columns changed. */
const columnsWith = (over: (p: wire.PackedColumns) => Partial<wire.PackedColumns>) =>
  changeWith((g) => ({ columns: { ...g.columns!, ...over(g.columns!) } }));
/** The captured delete with its (only) group change changed. */
const deleteWith = (over: (g: wire.GroupChange) => Partial<wire.GroupChange>): wire.DeleteRequest => ({
  ...del.request,
  groups: del.request.groups.map((g) => ({ ...g, ...over(g) })),
});
const replaceAt = <T extends Uint8Array>(list: T[], i: number, b: T) => list.map((x, j) => (j === i ? b : x));

/** A valid paper-protocol (fnn) query of a random image. */
async function paperQuery(): Promise<wire.QueryRequest> {
  const q = await encryptQuery(async (v) => v.map((x) => keys.pk.encrypt(x)), randomPixels(D));
  return {
    tag: 't',
    k: 1,
    header: { keyFingerprint: keys.pk.fingerprint(), width: W, height: H },
    protocol: { $case: 'fnn', value: new WireCodec(keys.pk.cipherBytes).paperQueryToWire(q) },
  };
}
/** The PaperQuery of a paper request, with some fields changed. */
const withPaperPart = (req: wire.QueryRequest, over: (q: wire.PaperQuery) => Partial<wire.PaperQuery>): wire.QueryRequest => {
  if (req.protocol?.$case !== 'fnn') throw new Error('not an fnn query');
  return { ...req, protocol: { $case: 'fnn', value: { ...req.protocol.value, ...over(req.protocol.value) } } };
};
const withQuery = async (over: (q: wire.PaperQuery) => Partial<wire.PaperQuery>) => withPaperPart(await paperQuery(), over);
/** The FastQuery of a fast request, with some fields changed. */
const withFastPart = (req: wire.QueryRequest, over: Partial<wire.FastQuery>): wire.QueryRequest => {
  if (req.protocol?.$case !== 'fast') throw new Error('not a fast query');
  return { ...req, protocol: { $case: 'fast', value: { ...req.protocol.value, ...over } } };
};

/** A fast query's C1 part, with a real share deposited at C2. */
async function fastQuery(): Promise<wire.QueryRequest> {
  const params = packingParams(keys.pk.bits, W, H, 255);
  const shares = await shareQuery(randomPixels(D), params, async (v) => v.map((x) => keys.pk.encrypt(x)));
  const { ticket } = await rpc<wire.ShareTicket>((m, o, cb) =>
    c.retrieval.putShare(
      {
        distance: shares.forC2.distance.map(residueToBytes),
        bound: shares.forC2.bound.map(residueToBytes),
        coarse: shares.forC2.coarse.map(residueToBytes),
      },
      m,
      o,
      cb,
    ),
  );
  const codec = new WireCodec(keys.pk.cipherBytes);
  return {
    tag: 't',
    k: 1,
    header: { keyFingerprint: keys.pk.fingerprint(), width: W, height: H },
    protocol: {
      $case: 'fast',
      value: {
        distanceShare: shares.forC1.shares.distance.map(residueToBytes),
        boundShare: shares.forC1.shares.bound.map(residueToBytes),
        distanceConstant: codec.cipher(shares.forC1.distanceConstant),
        boundConstant: codec.cipher(shares.forC1.boundConstant),
        coarseShare: shares.forC1.shares.coarse.map(residueToBytes),
        coarseConstant: codec.cipher(shares.forC1.coarseConstant),
        shareTicket: ticket,
      },
    },
  };
}

// ----- bytes on the wire -----

const PATH = {
  upload: '/fnn.v1.Database/Upload',
  delete: '/fnn.v1.Database/Delete',
  query: '/fnn.v1.Database/Query',
  allocate: '/fnn.v1.Database/AllocateSlots',
  getGroup: '/fnn.v1.Database/GetGroup',
  status: '/fnn.v1.Database/Status',
  batch: '/fnn.v1.Database/BatchQuery',
};
const raw = (path: string, b: () => Buffer) => () => rawUnary(c.rawC1, path, b());
const encodeUpload = () => Buffer.from(wire.UploadRequest.encode(spare.upload).finish());

/** Bytes that do not parse as protobuf: gRPC answers INTERNAL "Error deserializing request" (its standard), no more. */
const NOT_PROTOBUF: [string, () => Buffer][] = [
  ['one byte 0xff (a tag cut short)', () => Buffer.from([0xff])],
  ['wire type 7 (no such type)', () => Buffer.from([0x0f, 0x01])],
  ['a length prefix of 2^32-1 with 2 bytes behind it', () => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x41, 0x41])],
  // Cut inside its first field (the key fingerprint, length-delimited): a cut at a field boundary would still parse.
  ['a valid request cut in the middle of a field', () => encodeUpload().subarray(0, 2 + Math.floor(encodeUpload()[1] / 2))],
  ['an unterminated group (wire type 3)', () => Buffer.from([0x0b, 0x10, 0x01])],
];
const DESERIALIZE = /^Error deserializing request/;

/** A message built field by field, so fields can carry the wrong wire type. */
const fields = (build: (w: BinaryWriter) => BinaryWriter) => () => Buffer.from(build(new BinaryWriter()).finish());
const uploadHead = (w: BinaryWriter) =>
  w.uint32(10).string(keys.pk.fingerprint()).uint32(16).uint32(W).uint32(24).uint32(H).uint32(32).uint32(255);

const badCases: BadCase[] = [
  // Invalid ciphertexts in every ciphertext field of an upload.
  ...NOT_CIPHERTEXTS.flatMap(([value, b]): BadCase[] => [
    {
      name: `Upload: a pixel ciphertext = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => upload(record((r) => ({ pixels: replaceAt(r.pixels, 5, b()) }))),
    },
    { name: `Upload: the sum E(S) = ${value}`, code: Code.INVALID_ARGUMENT, run: () => upload(record(() => ({ sum: b() }))) },
    { name: `Upload: the spread E(T) = ${value}`, code: Code.INVALID_ARGUMENT, run: () => upload(record(() => ({ spread: b() }))) },
    {
      name: `Upload: a packed pixel column of the group = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => upload(columnsWith((p) => ({ distance: replaceAt(p.distance, 0, b()) }))),
    },
    {
      name: `Upload: a packed embedding column of the group = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => upload(columnsWith((p) => ({ bound: replaceAt(p.bound, 1, b()) }))),
    },
    {
      name: `Upload: the group's packed distance constant = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => upload(columnsWith(() => ({ distanceConstant: b() }))),
    },
    {
      name: `Upload: the group's packed bound constant = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => upload(columnsWith(() => ({ boundConstant: b() }))),
    },
    {
      name: `Delete: a re-encrypted group's pixel column = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: () => removeRequest(deleteWith((g) => ({ columns: { ...g.columns!, distance: replaceAt(g.columns!.distance, 2, b()) } }))),
    },
  ]),
  // ... and of a query.
  ...NOT_CIPHERTEXTS.flatMap(([value, b]): BadCase[] => [
    {
      name: `Query (fnn): a query pixel E(-q) = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: async () => query(await withQuery((q) => ({ negatedPixels: replaceAt(q.negatedPixels, 3, b()) }))),
    },
    {
      name: `Query (fnn): E(-S) = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: async () => query(await withQuery(() => ({ negatedSum: b() }))),
    },
    {
      name: `Query (fnn): E(-T) = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: async () => query(await withQuery(() => ({ negatedSpread: b() }))),
    },
    { name: `Query (fnn): E(T) = ${value}`, code: Code.INVALID_ARGUMENT, run: async () => query(await withQuery(() => ({ spread: b() }))) },
    {
      name: `Query (fast): the distance constant = ${value}`,
      code: Code.INVALID_ARGUMENT,
      run: async () => {
        return query(withFastPart(await fastQuery(), { distanceConstant: b() }));
      },
    },
  ]),
  // Other fields of an upload out of range.
  {
    name: 'Upload: an encrypted ID of 28 bytes (below AES-GCM nonce + tag)',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record(() => ({ encryptedId: Buffer.alloc(28, 1) }))),
  },
  {
    name: 'Upload: an encrypted ID of 1025 bytes',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record(() => ({ encryptedId: Buffer.alloc(1025, 1) }))),
  },
  {
    name: 'Upload: a sealed image larger than an image of d pixels seals to with the longest metadata',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record(() => ({ sealedImage: Buffer.alloc(maxSealedImageBytes(D) + 1, 1) }))),
  },
  {
    name: 'Upload: a lookup tag of 33 bytes',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record((r) => ({ lookupTag: Buffer.concat([r.lookupTag, Buffer.alloc(1)]) }))),
  },
  {
    name: 'Upload: a group version of 15 bytes',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(changeWith((g) => ({ version: g.version.subarray(1) }))),
  },
  {
    name: 'Upload: an empty group version',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(changeWith(() => ({ version: Buffer.alloc(0) }))),
  },
  {
    name: 'Upload: 513x512 images (above the largest supported)',
    code: Code.INVALID_ARGUMENT,
    run: () => upload({ ...spare.upload, width: 513, height: 512 }),
  },
  {
    name: 'Upload: 100,000 pixels in a 4x4 record',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record((r) => ({ pixels: Array(100_000).fill(r.pixels[0]) }))),
  },
  {
    name: 'Upload: 100,000 packed pixel columns for a 4x4 group',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(columnsWith((p) => ({ distance: Array(100_000).fill(p.distance[0]) }))),
  },
  {
    name: 'Upload: no packed columns although the group has members',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(changeWith(() => ({ columns: undefined }))),
  },
  { name: 'Upload: no group change', code: Code.INVALID_ARGUMENT, run: () => upload({ ...spare.upload, group: undefined }) },
  {
    name: 'Upload: a stale base version (another owner changed the group first)',
    code: Code.FAILED_PRECONDITION,
    run: () => upload(changeWith(() => ({ baseVersion: Buffer.alloc(16, 7) }))),
  },
  {
    name: 'Upload: an empty base version although the group has members',
    code: Code.FAILED_PRECONDITION,
    run: () => upload(changeWith(() => ({ baseVersion: Buffer.alloc(0) }))),
  },
  {
    name: "Upload: the change of group 1 sent as group 0 (its base version is not group 0's)",
    code: Code.FAILED_PRECONDITION,
    run: () => upload(changeWith(() => ({ group: 0 }))),
  },
  {
    name: 'Upload: group 2^32 - 1 (no such group) with a base version',
    code: Code.FAILED_PRECONDITION,
    run: () => upload(changeWith(() => ({ group: 0xffffffff }))),
  },
  {
    name: 'Upload: a record slot outside the group (slot = 1,000,000)',
    code: Code.INVALID_ARGUMENT,
    run: () => upload(record(() => ({ slot: 1_000_000 }))),
  },
  {
    name: 'Upload: an empty message (no key, no shape, no records)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.upload, () => Buffer.alloc(0)),
  },
  // Unknown and odd IDs, slots asked for wrongly.
  { name: 'AllocateSlots: an empty lookup tag', code: Code.INVALID_ARGUMENT, run: () => allocate([Buffer.alloc(0)]) },
  { name: 'AllocateSlots: a lookup tag of 1 MiB', code: Code.INVALID_ARGUMENT, run: () => allocate([Buffer.alloc(1 << 20, 7)]) },
  { name: 'AllocateSlots: no lookup tags', code: Code.INVALID_ARGUMENT, run: () => allocate([]) },
  {
    name: 'AllocateSlots: images of another size than the collection (5x5)',
    code: Code.INVALID_ARGUMENT,
    run: () => allocate([spare.lookupTag], { width: 5, height: 5 }),
  },
  { name: 'AllocateSlots: zero width', code: Code.INVALID_ARGUMENT, run: () => allocate([spare.lookupTag], { width: 0 }) },
  { name: 'AllocateSlots: pixel depth 70000', code: Code.INVALID_ARGUMENT, run: () => allocate([spare.lookupTag], { maxValue: 70000 }) },
  { name: 'AllocateSlots: an empty message', code: Code.INVALID_ARGUMENT, run: raw(PATH.allocate, () => Buffer.alloc(0)) },
  {
    name: 'Delete: the same stored ID twice in one request (all or nothing: deletes neither)',
    code: Code.NOT_FOUND,
    run: () => removeRequest({ ...del.request, lookupTags: [del.request.lookupTags[0], del.request.lookupTags[0]] }),
  },
  {
    name: 'Delete: a stored ID without the re-encrypted columns of its group',
    code: Code.INVALID_ARGUMENT,
    run: () => removeRequest({ ...del.request, groups: [] }),
  },
  {
    name: 'Delete: a stale base version of the group losing a member',
    code: Code.FAILED_PRECONDITION,
    run: () => removeRequest(deleteWith(() => ({ baseVersion: Buffer.alloc(16, 9) }))),
  },
  {
    name: "Delete: a group change of 15 bytes' version",
    code: Code.INVALID_ARGUMENT,
    run: () => removeRequest(deleteWith((g) => ({ version: g.version.subarray(1) }))),
  },
  {
    name: 'Delete: the group that loses a member changed twice',
    code: Code.INVALID_ARGUMENT,
    run: () => removeRequest({ ...del.request, groups: [del.request.groups[0], del.request.groups[0]] }),
  },
  {
    name: 'Delete: a change of a group that loses no member (group 1)',
    code: Code.INVALID_ARGUMENT,
    run: () => removeRequest({ ...del.request, groups: [...del.request.groups, { ...del.request.groups[0], group: 1 }] }),
  },
  {
    name: 'Delete: no columns for a group that keeps members',
    code: Code.INVALID_ARGUMENT,
    run: () => removeRequest(deleteWith(() => ({ columns: undefined }))),
  },
  {
    name: 'Delete: 1000 unknown IDs',
    code: Code.NOT_FOUND,
    run: () => remove(Array.from({ length: 1000 }, (_, i) => keys.recordKey.lookupTag(`nobody-${i}`))),
  },
  { name: 'Delete: an ID that was never uploaded, though it was given a slot', code: Code.NOT_FOUND, run: () => remove([spare.lookupTag]) },
  { name: 'Delete: an empty lookup tag', code: Code.INVALID_ARGUMENT, run: () => remove([Buffer.alloc(0)]) },
  { name: 'Delete: an empty message', code: Code.INVALID_ARGUMENT, run: raw(PATH.delete, () => Buffer.alloc(0)) },
  // Queries out of range.
  { name: 'Query: k = 2^32 - 1', code: Code.INVALID_ARGUMENT, run: async () => query({ ...(await paperQuery()), k: 0xffffffff }) },
  {
    name: 'Query: a header naming no protocol (no case of the oneof)',
    code: Code.INVALID_ARGUMENT,
    run: async () => query({ ...(await paperQuery()), protocol: undefined }),
  },
  {
    name: 'Query: a protocol part without the header',
    code: Code.INVALID_ARGUMENT,
    run: async () => query({ ...(await paperQuery()), header: undefined }),
  },
  { name: 'Query: an empty message', code: Code.INVALID_ARGUMENT, run: raw(PATH.query, () => Buffer.alloc(0)) },
  {
    name: "Query (fast): C1's share with 100,000 values",
    code: Code.INVALID_ARGUMENT,
    run: async () => query(withFastPart(await fastQuery(), { distanceShare: Array(100_000).fill(Buffer.from([1])) })),
  },
  {
    name: 'Query (fast): a share ticket of 1 MiB',
    code: Code.NOT_FOUND,
    run: async () => query(withFastPart(await fastQuery(), { shareTicket: 'a'.repeat(1 << 20) })),
  },
  // Bytes that are not protobuf, to every method.
  ...Object.entries(PATH)
    .filter(([method]) => method !== 'batch')
    .flatMap(([method, path]) =>
      NOT_PROTOBUF.map(([what, b]): BadCase => ({
        name: `${method} (raw bytes): ${what}`,
        code: Code.INTERNAL,
        details: DESERIALIZE,
        run: raw(path, b),
      })),
    ),
  // Valid protobuf, fields of the wrong wire type or of another message.
  {
    name: 'Upload: width sent as a length-delimited field (skipped: width 0)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) =>
        w
          .uint32(10)
          .string(keys.pk.fingerprint())
          .uint32(18)
          .bytes(Buffer.from([4]))
          .uint32(24)
          .uint32(H)
          .uint32(32)
          .uint32(255),
      ),
    ),
  },
  {
    name: 'Upload: records sent as a varint (skipped: no records)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) => uploadHead(w).uint32(40).uint32(1)),
    ),
  },
  {
    name: 'Upload: a record that is a 32-bit fixed value (skipped: no records)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) => uploadHead(w).uint32(45).fixed32(1)),
    ),
  },
  {
    name: 'Upload: the key fingerprint as invalid UTF-8',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) => w.uint32(10).bytes(Buffer.from([0xc3, 0x28, 0xff]))),
    ),
  },
  {
    name: 'Upload: width 2^32 - 1 as a 10-byte varint',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) =>
        w
          .uint32(10)
          .string(keys.pk.fingerprint())
          .uint32(16)
          .uint64(2n ** 64n - 1n)
          .uint32(24)
          .uint32(H),
      ),
    ),
  },
  {
    name: 'Upload: a field 0 tag (parsing stops: an empty request)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.upload, () => Buffer.concat([Buffer.from([0x00]), encodeUpload()])),
  },
  {
    name: 'Upload: a DeleteRequest sent as an UploadRequest',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.upload, () => Buffer.from(wire.DeleteRequest.encode({ lookupTags: [spare.lookupTag], groups: [] }).finish())),
  },
  {
    name: 'Upload: a record whose pixels are varints',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.upload,
      fields((w) => uploadHead(w).uint32(42).fork().uint32(24).uint32(5).join()),
    ),
  },
  {
    name: 'Delete: an UploadRequest sent as a DeleteRequest (its key fingerprint read as a tag)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.delete, encodeUpload),
  },
  {
    name: 'Delete: lookup tags sent as varints (skipped: no IDs)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.delete,
      fields((w) => w.uint32(8).uint32(1).uint32(8).uint32(2)),
    ),
  },
  {
    name: 'Query: k sent as a length-delimited field (skipped: a query naming no protocol)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.query,
      fields((w) => w.uint32(18).bytes(Buffer.from([1]))),
    ),
  },
  // An UploadRequest's head (key, width, height, depth) read as a QueryRequest: the key lands on the tag,
  // the width on k, the rest is skipped, and a query naming no protocol is refused. (A whole upload is
  // not used: how its random ciphertext bytes parse as a query's fields varies from run to run.)
  {
    name: "Query: an UploadRequest's head sent as a QueryRequest",
    code: Code.INVALID_ARGUMENT,
    details: /^the query names no protocol$/,
    run: raw(PATH.query, fields(uploadHead)),
  },
  {
    name: 'Query: a DeleteRequest sent as a QueryRequest (its tags read as the query tag)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.query, () => Buffer.from(wire.DeleteRequest.encode(del.request).finish())),
  },
  {
    name: 'AllocateSlots: the lookup tag sent as a varint (skipped: no tags)',
    code: Code.INVALID_ARGUMENT,
    run: raw(
      PATH.allocate,
      fields((w) => w.uint32(8).uint32(32)),
    ),
  },
  {
    name: 'Upload: the group change sent as a varint (skipped: no group)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.upload, () =>
      Buffer.concat([
        Buffer.from(wire.UploadRequest.encode({ ...spare.upload, group: undefined }).finish()),
        fields((w) => w.uint32(56).uint32(1))(),
      ]),
    ),
  },
  {
    name: 'Delete: a group change whose columns are a varint (skipped: no columns for a group that keeps members)',
    code: Code.INVALID_ARGUMENT,
    run: raw(PATH.delete, () =>
      Buffer.concat([
        Buffer.from(wire.DeleteRequest.encode({ ...del.request, groups: [] }).finish()),
        fields((w) =>
          w
            .uint32(18)
            .fork()
            .uint32(8)
            .uint32(0)
            .uint32(18)
            .bytes(del.request.groups[0].baseVersion)
            .uint32(26)
            .bytes(del.request.groups[0].version)
            .uint32(32)
            .uint32(1)
            .join(),
        )(),
      ]),
    ),
  },
  // Messages above the 64 MiB limit: refused by gRPC before they are parsed.
  {
    name: 'Upload: a 65 MiB message',
    code: Code.RESOURCE_EXHAUSTED,
    details: /larger than max/,
    run: raw(PATH.upload, () => Buffer.alloc(65 << 20)),
  },
  {
    name: 'Query: a 65 MiB message',
    code: Code.RESOURCE_EXHAUSTED,
    details: /larger than max/,
    run: raw(PATH.query, () => Buffer.alloc(65 << 20)),
  },
];

/** C1's groups 0 and 1 (GetGroup): versions and members' slots and tags. */
const groups = async () =>
  Promise.all(
    [0, 1].map(async (g) => {
      const { version, members } = await getGroup(g);
      return {
        version: Buffer.from(version).toString('hex'),
        members: members.map((m) => `${m.slot}:${Buffer.from(m.lookupTag).toString('hex')}`),
      };
    }),
  );

describe('C1 refuses malformed input with the right code, keeps serving, and changes nothing', () => {
  it.each(badCases.map((b) => [b.name, b] as const))('%s', async (name, b) => {
    const before = await counts(c);
    const groupsBefore = await groups();
    const error = await grpcError(b.run(), name);
    expect(Code[error.code], `${name}: expected ${Code[b.code]}, got ${Code[error.code]} ("${error.details}")`).toBe(Code[b.code]);
    if (b.details) expect(error.details, `${name}: the reason`).toMatch(b.details);
    else {
      expect(error.details, `${name}: the refusal must say why`).not.toBe('');
      expect(error.details, `${name}: a refusal must not be an internal error`).not.toMatch(/internal error|deserializing/);
    }
    const after = await counts(c); // throws if either daemon stopped answering
    expect(after, `${name}: a database changed although the request was refused`).toEqual(before);
    expect(await groups(), `${name}: a group's version or members changed although the request was refused`).toEqual(groupsBefore);
    expect(c1.child.exitCode, `${name}: C1 exited`).toBeNull();
    expect(c2.child.exitCode, `${name}: C2 exited`).toBeNull();
  });

  it('BatchQuery: a stream message that is not protobuf ends the stream with INTERNAL; C1 keeps serving', async () => {
    const before = await counts(c);
    const { error } = await rawStream(c.rawC1, PATH.batch, [Buffer.from([0x0f, 0x01])]);
    expect(error && Code[error.code], 'the stream must end with an error').toBe('INTERNAL');
    expect(error!.details).toMatch(DESERIALIZE);
    expect(await counts(c)).toEqual(before);
  });

  it('BatchQuery: a malformed query in a stream is answered with its error code, the stream goes on', async () => {
    const good = await paperQuery();
    const bad: wire.QueryRequest = { ...withPaperPart(good, () => ({ negatedSum: Buffer.alloc(0) })), tag: 'bad' };
    const { replies, error } = await rawStream(c.rawC1, PATH.batch, [
      Buffer.from(wire.QueryRequest.encode(bad).finish()),
      Buffer.alloc(0), // an empty QueryRequest
    ]);
    expect(error, `the stream must end cleanly: ${error?.details}`).toBeUndefined();
    const decoded = replies.map((r) => wire.QueryReply.decode(r));
    expect(decoded.map((r) => (r.answer?.$case === 'failure' ? r.answer.value.code : r.answer?.$case)).sort()).toEqual([
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
    ]);
  });

  it("afterwards answers a fast and an fnn query through the CLI exactly, and C1's database passes integrity_check", async () => {
    const qpath = writeImage(join(work, 'q.png'), randomPixels(D), W, H);
    const want = plaintextNearest(stored, decodePng(readFileSync(qpath), 'q').pixels, 1)[0];
    for (const protocol of ['fast', 'fnn']) {
      const q = await cliQuery([qpath, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--protocol', protocol]);
      expect(q.code, q.stderr).toBe(0);
      expect([q.result.results![0].id, q.result.results![0].distance], protocol).toEqual([want.id, want.distance.toString()]);
    }
    const db = new Database(join(work, 'c1.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect((db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n).toBe(stored.length);
    } finally {
      db.close();
    }
    const status = jsonLines((await runCli(['status', '--c1', c1.address, '--c2', c2.address, INSECURE, '--json'])).stdout)[0] as {
      c1: { records: number };
    };
    expect(status.c1.records).toBe(stored.length);
  });
});
