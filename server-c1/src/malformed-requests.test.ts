import { status as Code } from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { cipherToBytes, layoutsToWire, openSealedImage, packingParams, residueToBytes } from '@fnn/shared';
import {
  allocateSlots,
  BF,
  COLLECTION_SIZE,
  databaseStatus,
  expectCode,
  FAST,
  FNN,
  forget,
  G,
  getGroup,
  grpcError,
  paperRequest,
  query,
  randomImage,
  remember,
  remove,
  SHAPE,
  useFixture,
  UNKNOWN_TICKET,
  upload,
  withClaimedShape,
  withFast,
  withKeyFingerprint,
  withoutProtocol,
  withoutQueryHeader,
  withPaperQuery,
  type Deployment,
  type Fixture,
  PACKED_ONLY,
  WITH_PAPER_LAYOUT,
  KEY_BITS,
  WIDTH,
  HEIGHT,
  MAX_VALUE,
} from './testing/fixtures';

// Malformed requests to C1's Database and C2's Replica and Retrieval, on real
// daemons: each case is refused with its gRPC code and a reason, leaves both
// servers' state as it was (C1's Status and groups, C2's replica count), and
// both replicas still answer a FAST query exactly. Each case corrupts one
// field of a valid request the real owner built (captured, never sent).

let f: Fixture;

useFixture({ empty: true, lean: true }, (started) => (f = started));

/** Groups scanned by GetGroup when checking that nothing changed. */
const GROUPS_SCANNED = 8;
/** The collection's packing (the share ranges a doctor's shares fall in). */
const PACKING = packingParams(KEY_BITS, WIDTH, HEIGHT, MAX_VALUE);

// ----- malformed input: every case is refused with its code and leaves both servers as they were -----

interface BadCase {
  name: string;
  code: Code;
  /** The deployment the case talks to (default: the populated one). */
  target?: () => Deployment;
  run: () => Promise<unknown>;
}

const zeros = (bytes = f.pk.cipherBytes) => Buffer.alloc(bytes);
const allOnes = (bytes = f.pk.cipherBytes) => Buffer.alloc(bytes, 0xff);
const factorOfN = () => Buffer.from(cipherToBytes(BigInt(f.sk.toJSON().p), f.pk.cipherBytes));
const factorOfN1 = () => Buffer.from(cipherToBytes(BigInt(f.sk1.toJSON().p), f.pk1.cipherBytes));
const replaceAt = <T>(list: T[], index: number, value: T): T[] => list.map((x, i) => (i === index ? value : x));

/** Valid requests the real owner built (captured, never sent), to be corrupted one field at a time. */
interface Bases {
  /** main: a new record into the last, partly filled group (its base version is that group's). */
  upload: wire.UploadRequest;
  replica: wire.ReplicaGroup;
  /** main: a replacement of a member of that group and the new record, in one request. */
  upload2: wire.UploadRequest;
  /** A slot of the upload's group held by another record. */
  takenSlot: number;
  /** A 5x5 image (captured against the empty C1). */
  upload5x5: wire.UploadRequest;
  replica5x5: wire.ReplicaGroup;
  /** lean: a new record without the paper's layout, and the same with it. */
  lean: wire.UploadRequest;
  leanPaper: wire.UploadRequest;
  /** main: delete one member of a group that keeps others; all members of group 0; one of each. */
  delete1: wire.DeleteRequest;
  deleteGroup0: wire.DeleteRequest;
  delete2: wire.DeleteRequest;
  /** C2's side of delete1 (a group whose members shrink) and of deleteGroup0 (a group dropped). */
  replicaDrop: wire.ReplicaGroup;
}
let bases: Bases;

const change = (over: Partial<wire.GroupChange>, req = bases.upload): wire.UploadRequest => ({ ...req, group: { ...req.group!, ...over } });
const columns = (over: Partial<wire.PackedColumns>, req = bases.upload) => change({ columns: { ...req.group!.columns!, ...over } }, req);
const columnPixel = (index: number, bytes: Buffer) => columns({ distance: replaceAt(bases.upload.group!.columns!.distance, index, bytes) });
const withRecord = (over: Partial<wire.EncryptedRecord>, index = 0, req = bases.upload): wire.UploadRequest => ({
  ...req,
  records: req.records.map((r, i) => (i === index ? { ...r, ...over } : r)),
});
const recordPixel = (index: number, bytes: Buffer) => withRecord({ pixels: replaceAt(bases.upload.records[0].pixels, index, bytes) });
const withoutPaper = (r: wire.EncryptedRecord): wire.EncryptedRecord => ({
  ...r,
  pixels: [],
  sum: Buffer.alloc(0),
  spread: Buffer.alloc(0),
});

const replicaWith = (over: Partial<wire.ReplicaGroup>, base = () => bases.replica): wire.ReplicaGroup => ({ ...base(), ...over });
const replicaChange = (over: Partial<wire.GroupChange>) => replicaWith({ group: { ...bases.replica.group!, ...over } });
const replicaColumns = (over: Partial<wire.PackedColumns>) => replicaChange({ columns: { ...bases.replica.group!.columns!, ...over } });
const replicaColumnPixel = (index: number, bytes: Buffer) =>
  replicaColumns({ distance: replaceAt(bases.replica.group!.columns!.distance, index, bytes) });

const deleteChange = (over: Partial<wire.GroupChange>, req = () => bases.delete1): wire.DeleteRequest => ({
  ...req(),
  groups: replaceAt(req().groups, 0, { ...req().groups[0], ...over }),
});

const badUpload = (name: string, build: () => wire.UploadRequest, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Upload: ${name}`,
  code,
  run: () => upload(f.main.db, build()),
});
const badColumns = (name: string, build: () => wire.UploadRequest, code = Code.INVALID_ARGUMENT) =>
  badUpload(`group change: ${name}`, build, code);
const badLean = (name: string, build: () => wire.UploadRequest): BadCase => ({
  name: `Upload (collection without the paper's layout): ${name}`,
  code: Code.INVALID_ARGUMENT,
  target: () => f.lean,
  run: () => upload(f.lean.db, build()),
});
const badAllocate = (name: string, tags: () => Buffer[], shape: Partial<typeof SHAPE> = {}): BadCase => ({
  name: `AllocateSlots: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => allocateSlots(f.main.db, tags(), shape),
});
const badQuery = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Query: ${name}`,
  code,
  run: async () => query(f.main.db, await build()),
});
const badFast = (name: string, build: () => Promise<wire.QueryRequest>, code = Code.INVALID_ARGUMENT): BadCase =>
  badQuery(`FAST ${name}`, build, code);
const badReplica = (name: string, build: () => wire.ReplicaGroup): BadCase => ({
  name: `Replica.PutGroup: ${name}`,
  code: Code.INVALID_ARGUMENT,
  run: () => f.putGroup(build()),
});
const badDelete = (name: string, build: () => wire.DeleteRequest, code = Code.INVALID_ARGUMENT): BadCase => ({
  name: `Delete: ${name}`,
  code,
  run: () => remove(f.main.db, build()),
});

const badCases: BadCase[] = [
  // Upload: the request and its records
  badUpload('wrong key fingerprint', () => ({ ...bases.upload, keyFingerprint: '0123456789abcdef' })),
  badUpload('image size differs from the collection (5x5 into 4x4)', () => bases.upload5x5),
  badUpload('pixel depth differs from the collection (65535 into 255)', () => ({ ...bases.upload, maxValue: 65535 })),
  badUpload('pixel count is not width*height (15 of 16)', () => withRecord({ pixels: bases.upload.records[0].pixels.slice(1) })),
  badUpload('pixel count is not width*height (17 of 16)', () =>
    withRecord({ pixels: [...bases.upload.records[0].pixels, bases.upload.records[0].pixels[0]] }),
  ),
  badUpload('zero width', () => ({ ...bases.upload, width: 0, height: 16 })),
  badUpload('zero height', () => ({ ...bases.upload, width: 16, height: 0 })),
  badUpload('huge width (1,000,000 x 1)', () => ({ ...bases.upload, width: 1_000_000, height: 1 })),
  badUpload('huge width and height (65536 x 65536)', () => ({ ...bases.upload, width: 65536, height: 65536 })),
  badUpload('maxValue 0', () => ({ ...bases.upload, maxValue: 0 })),
  badUpload('maxValue 70000', () => ({ ...bases.upload, maxValue: 70000 })),
  badUpload('empty records list', () => ({ ...bases.upload, records: [] })),
  badUpload('no group change', () => ({ ...bases.upload, group: undefined })),
  badUpload('pixel ciphertext of the wrong byte length (one byte short)', () =>
    recordPixel(2, bases.upload.records[0].pixels[2].subarray(1) as Buffer),
  ),
  badUpload('pixel ciphertext one byte too long', () =>
    recordPixel(2, Buffer.concat([Buffer.alloc(1), bases.upload.records[0].pixels[2]])),
  ),
  badUpload('pixel ciphertext equal to 0', () => recordPixel(0, zeros())),
  badUpload('pixel ciphertext >= N^2 (all 0xff bytes)', () => recordPixel(7, allOnes())),
  badUpload('pixel ciphertext sharing a factor with N (p)', () => recordPixel(15, factorOfN())),
  badUpload('sum ciphertext equal to 0', () => withRecord({ sum: zeros() })),
  badUpload('spread ciphertext sharing a factor with N', () => withRecord({ spread: factorOfN() })),
  badUpload('lookup tag of the wrong length (31 bytes)', () => withRecord({ lookupTag: bases.upload.records[0].lookupTag.subarray(1) })),
  badUpload('empty lookup tag', () => withRecord({ lookupTag: Buffer.alloc(0) })),
  badUpload('empty encrypted_id', () => withRecord({ encryptedId: Buffer.alloc(0) })),
  badUpload('empty sealed image', () => withRecord({ sealedImage: Buffer.alloc(0) })),
  badUpload('a valid replacement followed by a malformed record (nothing of the call is stored)', () =>
    withRecord({ pixels: replaceAt(bases.upload2.records[1].pixels, 0, zeros()) }, 1, bases.upload2),
  ),
  badUpload(
    'a valid replacement followed by a record into a slot held by another (the replacement is rolled back)',
    () => withRecord({ slot: bases.takenSlot }, 1, bases.upload2),
    Code.FAILED_PRECONDITION,
  ),
  badUpload(
    'two records of one request in one slot',
    () => withRecord({ slot: bases.upload2.records[0].slot }, 1, bases.upload2),
    Code.FAILED_PRECONDITION,
  ),
  badUpload('record slot outside the group (slot = group size)', () => withRecord({ slot: G })),
  badUpload('record slot far outside the group', () => withRecord({ slot: 1_000_000 })),
  badUpload('a slot held by another record', () => withRecord({ slot: bases.takenSlot }), Code.FAILED_PRECONDITION),
  badUpload(
    'the lookup tag of a record stored in another group',
    () => withRecord({ lookupTag: f.tagOf(f.main.collection[0].id) }),
    Code.FAILED_PRECONDITION,
  ),
  // Upload: the paper's layout, fixed per collection
  badUpload("layouts = packed only, into a collection with the paper's layout", () => ({
    ...bases.upload,
    layouts: layoutsToWire(PACKED_ONLY),
    records: bases.upload.records.map(withoutPaper),
  })),
  badUpload('layouts = packed only, but the record carries its pixels', () => ({ ...bases.upload, layouts: layoutsToWire(PACKED_ONLY) })),
  badUpload('layouts without the packed one (every group is packed)', () => ({ ...bases.upload, layouts: layoutsToWire(['paper']) })),
  badUpload('layouts naming one twice', () => ({ ...bases.upload, layouts: [...bases.upload.layouts, wire.Layout.LAYOUT_PAPER] })),
  badUpload('layouts naming an unknown one (enum value 7)', () => ({
    ...bases.upload,
    layouts: [...bases.upload.layouts, 7 as wire.Layout],
  })),
  badUpload("layouts with the paper's, but the record carries no pixels", () => ({
    ...bases.upload,
    records: bases.upload.records.map(withoutPaper),
  })),
  badLean('a record carrying pixels when the layouts are packed only', () =>
    withRecord({ pixels: bases.leanPaper.records[0].pixels }, 0, bases.lean),
  ),
  badLean('a record carrying a sum when the layouts are packed only', () =>
    withRecord({ sum: bases.leanPaper.records[0].sum }, 0, bases.lean),
  ),
  badLean("the paper's layout into a collection without it (records with the layout)", () => bases.leanPaper),
  badLean("the paper's layout into a collection without it (records without the layout)", () => ({
    ...bases.lean,
    layouts: layoutsToWire(WITH_PAPER_LAYOUT),
  })),
  // Upload: the group change and its packed columns
  badColumns('stale base_version (16 random bytes)', () => change({ baseVersion: Buffer.alloc(16, 7) }), Code.FAILED_PRECONDITION),
  badColumns('empty base_version although the group has members', () => change({ baseVersion: Buffer.alloc(0) }), Code.FAILED_PRECONDITION),
  badColumns('base_version of another group', () => change({ baseVersion: bases.delete2.groups[0].baseVersion }), Code.FAILED_PRECONDITION),
  badColumns('version of 15 bytes', () => change({ version: bases.upload.group!.version.subarray(1) })),
  badColumns('version of 17 bytes', () => change({ version: Buffer.concat([bases.upload.group!.version, Buffer.alloc(1)]) })),
  badColumns('empty version', () => change({ version: Buffer.alloc(0) })),
  badColumns('no columns although the group has members', () => change({ columns: undefined })),
  badColumns('15 of 16 pixel columns', () => columns({ distance: bases.upload.group!.columns!.distance.slice(1) })),
  badColumns('17 of 16 pixel columns', () =>
    columns({ distance: [...bases.upload.group!.columns!.distance, bases.upload.group!.columns!.distance[0]] }),
  ),
  badColumns('an embedding one short', () => columns({ bound: bases.upload.group!.columns!.bound.slice(1) })),
  badColumns('no embedding', () => columns({ bound: [] })),
  badColumns('pixel column ciphertext equal to 0', () => columnPixel(0, zeros())),
  badColumns('pixel column ciphertext >= N^2', () => columnPixel(3, allOnes())),
  badColumns('pixel column ciphertext sharing a factor with N', () => columnPixel(5, factorOfN())),
  badColumns('pixel column ciphertext of the wrong byte length (one byte short)', () => columnPixel(3, zeros(f.pk.cipherBytes - 1))),
  badColumns('embedding ciphertext equal to 0', () => columns({ bound: replaceAt(bases.upload.group!.columns!.bound, 0, zeros()) })),
  badColumns("no distance constant (C1's replica needs it)", () => columns({ distanceConstant: Buffer.alloc(0) })),
  badColumns('no bound constant', () => columns({ boundConstant: Buffer.alloc(0) })),
  badColumns('distance constant >= N^2', () => columns({ distanceConstant: allOnes() })),
  badColumns('bound constant sharing a factor with N', () => columns({ boundConstant: factorOfN() })),
  // AllocateSlots
  badAllocate('no lookup tags', () => []),
  badAllocate('lookup tag of the wrong length (31 bytes)', () => [f.tagOf('x').subarray(1)]),
  badAllocate('one lookup tag of 33 bytes among valid ones', () => [f.tagOf('x'), Buffer.concat([f.tagOf('y'), Buffer.alloc(1)])]),
  badAllocate('10,001 lookup tags in one call', () => Array.from({ length: 10_001 }, (_, i) => f.tagOf(`bulk-${i}`))),
  badAllocate('zero width', () => [f.tagOf('x')], { width: 0 }),
  badAllocate('zero height', () => [f.tagOf('x')], { height: 0 }),
  badAllocate('huge width (1,000,000 x 4)', () => [f.tagOf('x')], { width: 1_000_000 }),
  badAllocate('maxValue 0', () => [f.tagOf('x')], { maxValue: 0 }),
  badAllocate('maxValue 70000', () => [f.tagOf('x')], { maxValue: 70000 }),
  badAllocate('image size differs from the collection (5x5)', () => [f.tagOf('x')], { width: 5, height: 5 }),
  badAllocate('pixel depth differs from the collection (65535)', () => [f.tagOf('x')], { maxValue: 65535 }),
  // Query (paper protocols)
  badQuery('wrong key fingerprint', async () => withKeyFingerprint(await f.paperQuery(randomImage()), '0123456789abcdef')),
  badQuery('query image size differs from the collection (5x5)', async () => paperRequest(await f.wireQuery(randomImage(25), 5, 5))),
  badQuery('query claims 4x4 but has 15 pixels', async () =>
    withPaperQuery(await f.paperQuery(randomImage()), (q) => ({ negatedPixels: q.negatedPixels.slice(1) })),
  ),
  badQuery('missing query (neither header nor protocol part)', async () => paperRequest(undefined)),
  badQuery('without its header (shape and key)', async () => withoutQueryHeader(await f.paperQuery(randomImage()))),
  badQuery('k = 101', async () => paperRequest(await f.wireQuery(randomImage()), FNN, 101)),
  badQuery('a header naming no protocol (no case of the oneof)', async () => withoutProtocol(await f.paperQuery(randomImage()))),
  badQuery('query pixel ciphertext equal to 0', async () =>
    withPaperQuery(await f.paperQuery(randomImage()), (q) => ({ negatedPixels: [zeros(), ...q.negatedPixels.slice(1)] })),
  ),
  badQuery('query spread ciphertext >= N^2', async () => withPaperQuery(await f.paperQuery(randomImage()), { spread: allOnes() })),
  badQuery('a bf query with an empty PaperQuery (no ciphertexts)', async () =>
    withPaperQuery(await f.paperQuery(randomImage(), BF), {
      negatedPixels: [],
      negatedSum: Buffer.alloc(0),
      negatedSpread: Buffer.alloc(0),
      spread: Buffer.alloc(0),
    }),
  ),
  // Query (fast protocol)
  badFast('without its protocol part (the header alone)', async () => withoutProtocol(await f.fastRequest(randomImage()))),
  badFast('without its header (shape and key)', async () => withoutQueryHeader(await f.fastRequest(randomImage()))),
  badFast('wrong key fingerprint', async () => withKeyFingerprint(await f.fastRequest(randomImage()), '0123456789abcdef')),
  badFast('query image size differs from the collection (claims 5x5)', async () =>
    withClaimedShape(await f.fastRequest(randomImage()), 5, 5),
  ),
  badFast('k = 101', async () => f.fastRequest(randomImage(), { k: 101 })),
  badFast("C1's distance share of the wrong length (15 of 16)", async () =>
    withFast(await f.fastRequest(randomImage()), (fast) => ({ distanceShare: fast.distanceShare.slice(1) })),
  ),
  badFast("C1's bound share of the wrong length (one short)", async () =>
    withFast(await f.fastRequest(randomImage()), (fast) => ({ boundShare: fast.boundShare.slice(1) })),
  ),
  badFast("C1's share with a value above 64 bytes", async () =>
    withFast(await f.fastRequest(randomImage()), (fast) => ({ distanceShare: [Buffer.alloc(65, 1), ...fast.distanceShare.slice(1)] })),
  ),
  badFast("C1's distance share with a value of 2 shareOffset (outside [0, 2 shareOffset): no doctor sends it)", async () =>
    withFast(await f.fastRequest(randomImage()), (fast) => ({
      distanceShare: [residueToBytes(2n * PACKING.distance.shareOffset), ...fast.distanceShare.slice(1)],
    })),
  ),
  badFast("C1's bound share with a value of 2 shareOffset", async () =>
    withFast(await f.fastRequest(randomImage()), (fast) => ({
      boundShare: [...fast.boundShare.slice(1), residueToBytes(2n * PACKING.bound.shareOffset)],
    })),
  ),
  badFast('distance constant equal to 0', async () => withFast(await f.fastRequest(randomImage()), { distanceConstant: zeros() })),
  badFast('bound constant of the wrong byte length', async () =>
    withFast(await f.fastRequest(randomImage()), { boundConstant: zeros(f.pk.cipherBytes + 1) }),
  ),
  badFast("C2's share of the wrong length (C2 refuses it in the session)", async () =>
    f.fastRequest(randomImage(), { c2Share: (s) => ({ ...s, distance: s.distance.slice(1) }) }),
  ),
  badFast(
    'an unknown share ticket',
    async () => withFast(await f.fastRequest(randomImage()), { shareTicket: UNKNOWN_TICKET }),
    Code.NOT_FOUND,
  ),
  badFast('an empty share ticket', async () => withFast(await f.fastRequest(randomImage()), { shareTicket: '' }), Code.NOT_FOUND),
  badFast(
    'a share ticket used twice (the 2nd time)',
    async () => {
      const req = await f.fastRequest(randomImage());
      await query(f.main.db, req); // the 1st use must succeed
      return req;
    },
    Code.NOT_FOUND,
  ),
  {
    name: 'PutShare: a share value above 64 bytes',
    code: Code.INVALID_ARGUMENT,
    run: () => f.putShare({ distance: [Buffer.alloc(65, 1)], bound: [], coarse: [] }),
  },
  {
    name: 'Query: on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => f.empty,
    run: async () => query(f.empty.db, paperRequest(await f.wireQuery(randomImage()))),
  },
  {
    name: 'Query: FAST on an empty collection',
    code: Code.INVALID_ARGUMENT,
    target: () => f.empty,
    run: async () => query(f.empty.db, await f.fastRequest(randomImage())),
  },
  // Replica.PutGroup
  badReplica("wrong key fingerprint (C2's)", () => replicaWith({ keyFingerprint: '0123456789abcdef' })),
  badReplica("wrong evaluator key fingerprint (C1's)", () => replicaWith({ pk1Fingerprint: f.pk.fingerprint() })),
  badReplica('zero width', () => replicaWith({ width: 0 })),
  badReplica('huge width and height (65536 x 65536)', () => replicaWith({ width: 65536, height: 65536 })),
  badReplica('maxValue 70000', () => replicaWith({ maxValue: 70000 })),
  badReplica('image size differs from the replica (5x5 into 4x4)', () => bases.replica5x5),
  badReplica('pixel depth differs from the replica (65535 into 255)', () => replicaWith({ maxValue: 65535 })),
  badReplica('no group change', () => replicaWith({ group: undefined })),
  badReplica("a member's lookup tag of the wrong length (31 bytes)", () =>
    replicaWith({
      members: replaceAt(bases.replica.members, 0, {
        ...bases.replica.members[0],
        lookupTag: bases.replica.members[0].lookupTag.subarray(1),
      }),
    }),
  ),
  badReplica('a member slot outside the group (slot = group size)', () =>
    replicaWith({ members: replaceAt(bases.replica.members, 0, { ...bases.replica.members[0], slot: G }) }),
  ),
  badReplica('two members in one slot', () =>
    replicaWith({ members: replaceAt(bases.replica.members, 1, { ...bases.replica.members[1], slot: bases.replica.members[0].slot }) }),
  ),
  badReplica('version of 15 bytes', () => replicaChange({ version: bases.replica.group!.version.subarray(1) })),
  badReplica('empty version', () => replicaChange({ version: Buffer.alloc(0) })),
  badReplica('members but no columns', () => replicaChange({ columns: undefined })),
  badReplica('no members but columns (an emptied group)', () => replicaWith({ members: [] })),
  badReplica('15 of 16 pixel columns', () => replicaColumns({ distance: bases.replica.group!.columns!.distance.slice(1) })),
  badReplica('an embedding one short', () => replicaColumns({ bound: bases.replica.group!.columns!.bound.slice(1) })),
  badReplica('ciphertext one byte short', () => replicaColumnPixel(1, bases.replica.group!.columns!.distance[1].subarray(1) as Buffer)),
  badReplica('ciphertext equal to 0', () => replicaColumnPixel(1, zeros())),
  badReplica('ciphertext >= N1^2 (all 0xff bytes)', () => replicaColumnPixel(1, allOnes())),
  badReplica('ciphertext sharing a factor with N1', () => replicaColumnPixel(1, factorOfN1())),
  badReplica('embedding ciphertext equal to 0', () =>
    replicaColumns({ bound: replaceAt(bases.replica.group!.columns!.bound, 0, zeros()) }),
  ),
  badReplica('a dropped group (no members) with columns of another group', () =>
    replicaWith({ group: { ...bases.replicaDrop.group!, columns: bases.replica.group!.columns } }, () => bases.replicaDrop),
  ),
  // Delete
  badDelete('an unknown ID', () => ({ lookupTags: [f.tagOf('nobody')], groups: [] }), Code.NOT_FOUND),
  badDelete(
    'known IDs with one unknown among them (deletes none)',
    () => ({ ...bases.delete2, lookupTags: [bases.delete2.lookupTags[0], f.tagOf('nobody'), bases.delete2.lookupTags[1]] }),
    Code.NOT_FOUND,
  ),
  {
    name: 'Delete: an unknown ID on an empty collection',
    code: Code.NOT_FOUND,
    target: () => f.empty,
    run: () => remove(f.empty.db, { lookupTags: [f.tagOf('nobody')], groups: [] }),
  },
  badDelete('no IDs', () => ({ lookupTags: [], groups: [] })),
  badDelete('lookup tag of the wrong length', () => ({ ...bases.delete1, lookupTags: [bases.delete1.lookupTags[0].subarray(1)] })),
  badDelete('omits the group losing a member', () => ({ ...bases.delete1, groups: [] })),
  badDelete('omits one of two groups losing a member', () => ({ ...bases.delete2, groups: bases.delete2.groups.slice(1) })),
  badDelete('omits the group it empties', () => ({ ...bases.deleteGroup0, groups: [] })),
  badDelete('sends columns for the group it empties', () => ({
    ...bases.deleteGroup0,
    groups: [{ ...bases.deleteGroup0.groups[0], columns: bases.delete1.groups[0].columns }],
  })),
  badDelete('sends no columns for a group that keeps members', () => deleteChange({ columns: undefined })),
  badDelete('a stale base_version', () => deleteChange({ baseVersion: Buffer.alloc(16, 7) }), Code.FAILED_PRECONDITION),
  badDelete('a change for a group that loses no member', () => ({
    ...bases.delete1,
    groups: [...bases.delete1.groups, { ...bases.delete2.groups[0] }],
  })),
  badDelete('the same group changed twice', () => ({ ...bases.delete1, groups: [bases.delete1.groups[0], bases.delete1.groups[0]] })),
  badDelete('a version of 15 bytes', () => deleteChange({ version: bases.delete1.groups[0].version.subarray(1) })),
  badDelete('a column ciphertext equal to 0', () =>
    deleteChange({
      columns: { ...bases.delete1.groups[0].columns!, distance: replaceAt(bases.delete1.groups[0].columns!.distance, 0, zeros()) },
    }),
  ),
  badDelete('columns without the distance constant', () =>
    deleteChange({ columns: { ...bases.delete1.groups[0].columns!, distanceConstant: Buffer.alloc(0) } }),
  ),
  badDelete('an embedding one short', () =>
    deleteChange({ columns: { ...bases.delete1.groups[0].columns!, bound: bases.delete1.groups[0].columns!.bound.slice(1) } }),
  ),
  // Retrieve
  { name: 'Retrieve: an unknown ticket', code: Code.NOT_FOUND, run: () => f.retrieve(UNKNOWN_TICKET) },
  { name: 'Retrieve: an empty ticket', code: Code.NOT_FOUND, run: () => f.retrieve('') },
  {
    name: 'Retrieve: a ticket used twice (the 2nd time)',
    code: Code.NOT_FOUND,
    run: async () => {
      const reply = await query(f.main.db, paperRequest(await f.wireQuery(randomImage())));
      await f.redeem(reply); // the 1st use must succeed
      if (reply.answer?.$case !== 'fnn') throw new Error(`an fnn query answered as ${reply.answer?.$case}`);
      return f.retrieve(reply.answer.value.retrievalTicket);
    },
  },
];

/** Everything a refused request must leave as it was: C1's Status and groups (versions, members), C2's replica count. */
async function stateOf(d: Deployment) {
  const { c2Reachable: _reachable, ...status } = await databaseStatus(d.db);
  const groups = [];
  for (let g = 0; g < GROUPS_SCANNED; g++) groups.push(await getGroup(d.db, g));
  return { status, groups, replicaRecords: (await f.keyHolderStatus(d)).replicaRecords };
}

describe('Database service: malformed input is refused with the right code and changes nothing', () => {
  beforeAll(async () => {
    // The collection as the valid tests left it: the base upload, groups re-encrypted since.
    expect(
      f.main.collection.map((c) => c.id),
      'the valid tests leave the base collection',
    ).toEqual(Array.from({ length: COLLECTION_SIZE }, (_, i) => `patient-${i}`));
    const spare = { id: 'spare', pixels: randomImage() };
    const one = await f.captureUpload(f.main, [spare]);
    const group = one.uploads[0].group!.group;
    const members = await f.membersOf(f.main, group);
    const neighbour = members.find((id) => id !== null)!;
    const two = await f.captureUpload(f.main, [{ id: neighbour, pixels: randomImage() }, spare]);
    const shaped = await f.captureUpload(f.empty, [{ id: 'spare-5x5', pixels: randomImage(25) }], { width: 5, height: 5 });
    const leanOne = await f.captureUpload(f.lean, [{ id: 'lean-spare', pixels: randomImage() }]);
    const leanPaper = await f.captureUpload(f.lean, [{ id: 'lean-spare', pixels: randomImage() }], { layouts: WITH_PAPER_LAYOUT });
    const group0 = (await f.membersOf(f.main, 0)).filter((id): id is string => id !== null);
    const delete1 = await f.captureDelete(f.main, [neighbour]);
    const deleteGroup0 = await f.captureDelete(f.main, group0);
    const delete2 = await f.captureDelete(f.main, [group0[0], neighbour]);
    bases = {
      upload: one.uploads[0],
      replica: one.replicaGroups[0],
      upload2: two.uploads[0],
      takenSlot: members.lastIndexOf(members.filter((id) => id !== null).at(-1)!),
      upload5x5: shaped.uploads[0],
      // Of this collection: only its shape is wrong (the empty C1 fixed an id of its own).
      replica5x5: { ...shaped.replicaGroups[0], collectionId: one.replicaGroups[0].collectionId },
      lean: leanOne.uploads[0],
      leanPaper: leanPaper.uploads[0],
      delete1: delete1.deletes[0],
      deleteGroup0: deleteGroup0.deletes[0],
      delete2: delete2.deletes[0],
      replicaDrop: deleteGroup0.replicaGroups[0],
    };
    // The bases are what they should be, so each refusal is due to its one corruption.
    expect(bases.upload.group!.baseVersion.length, 'the spare joins a group with members').toBe(16);
    expect(bases.upload.records.length).toBe(1);
    expect(bases.replica.members.length, 'C2 is sent the members and the spare').toBeGreaterThanOrEqual(2);
    expect(
      bases.upload2.records.map((r) => f.recordKey.decryptId(r.encryptedId)),
      'a replacement and the spare in one request',
    ).toEqual([neighbour, 'spare']);
    expect(bases.takenSlot, 'a slot other than those of the request').not.toBe(bases.upload2.records[0].slot);
    expect(bases.upload5x5.width).toBe(5);
    expect(
      bases.delete1.groups.map((g) => g.columns !== undefined),
      'delete1 re-encrypts a group keeping members',
    ).toEqual([true]);
    expect(
      bases.deleteGroup0.groups.map((g) => [g.group, g.columns]),
      'deleteGroup0 empties group 0',
    ).toEqual([[0, undefined]]);
    expect(bases.replicaDrop.members, 'and drops it at C2').toEqual([]);
    expect(
      bases.delete2.groups.map((g) => g.group),
      "delete2 touches group 0 and the spare's group",
    ).toEqual([0, group]);
    expect(badCases.length, 'at least as many malformed cases as before the group-wise upload').toBeGreaterThanOrEqual(85);
  });

  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const target = (c.target ?? (() => f.main))();
    const watched = target === f.main ? [f.main] : [f.main, target];
    const before = await Promise.all(watched.map(stateOf));
    const error = await grpcError(c.run(), name);
    expectCode(error, c.code, name);
    expect(error.details, `${name}: the refusal must say why`).not.toBe('');
    expect(error.details, `${name}: a refusal must not be an internal error`).not.toBe('internal error');
    const after = await Promise.all(watched.map(stateOf));
    watched.forEach((d, i) => {
      expect(after[i].status, `${name}: ${d.name}'s collection changed although the request was refused`).toEqual(before[i].status);
      expect(after[i].groups, `${name}: ${d.name}'s groups changed although the request was refused`).toEqual(before[i].groups);
      expect(after[i].replicaRecords, `${name}: C2's replica changed although the request was refused`).toBe(before[i].replicaRecords);
    });
    // Both replicas still agree and answer exactly.
    for (const d of watched)
      if (d.collection.length > 0)
        await f.expectExactNeighbours(randomImage(), FAST, 2, `${name}: a FAST query on ${d.name} after the refusal`, d);
  });

  it.each([
    ['FAST', FAST],
    ['FNN', FNN],
    ['BF', BF],
  ])('still answers %s queries exactly after all the refusals', async (name, protocol) => {
    await f.expectExactNeighbours(randomImage(), protocol, 2, `${name} query after refusals`);
  });

  it('accepts the uncorrupted requests the malformed cases were made from', async () => {
    const spare = { id: 'spare', pixels: openSealedImage(f.recordKey, bases.upload.records[0].sealedImage).pixels };
    expect(await f.putGroup(bases.replica), 'C2 takes the captured group').toEqual({ total: BigInt(COLLECTION_SIZE + 1) });
    expect(await upload(f.main.db, bases.upload), 'C1 takes the captured upload').toEqual({
      stored: 1,
      replaced: 0,
      total: BigInt(COLLECTION_SIZE + 1),
    });
    remember(f.main, [spare]);
    try {
      const { ids } = await f.expectExactNeighbours(spare.pixels, FAST, 1, 'FAST self-query of the captured upload');
      expect(ids).toEqual(['spare']);
    } finally {
      forget(f.main, ['spare']);
      await f.ownerDelete(f.main, ['spare']);
    }
    await f.expectExactNeighbours(randomImage(), FAST, 2, 'FAST after the spare was deleted');
  });
});
