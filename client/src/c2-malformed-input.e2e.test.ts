import { rawSession } from '@fnn/server-common/testing';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as Code } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import * as wire from '@fnn/proto';
import { cipherToBytes, packingParams, residueToBytes, retrieveParts, shareQuery, WireCodec } from '@fnn/shared';
import { runCli, type Daemon } from './harness';
import {
  connect,
  counts,
  DEADLINE_MS,
  grpcError,
  INSECURE,
  makeKeys,
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

// C2's services against malformed input and a C1 that breaks the protocol, on
// the real daemons: each case is refused with its code, C2 (and C1) still
// answer Status, C2's replica and C1's collection are unchanged, and no
// session is left open. server-c2/src/session.test.ts has the first 14 session
// cases; these add messages after finish, wrong steps, unknown steps and
// sessions, the fast session's order, and bytes that are not protobuf.

const W = 4;
const H = 4;
const D = W * H;
let work: string;
let keys: Keys;
let c1: Daemon;
let c2: Daemon;
let c: Connections;
let codec: WireCodec;
/** A new record into group 1 as the real owner would send it (captured): C2's side is `spare.replica`, all of group 1's members. */
let spare: Awaited<ReturnType<typeof ownerGroupUpload>>;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fnn-malformed-c2-'));
  keys = await makeKeys(join(work, 'keys'));
  c2 = await startC2(keys, join(work, 'c2.db'));
  c1 = await startC1(keys, join(work, 'c1.db'), c2.address);
  c = connect(c1.address, c2.address);
  codec = new WireCodec(keys.pk.cipherBytes);
  const dir = join(work, 'images');
  mkdirSync(dir);
  for (let i = 0; i < 4; i++) writeImage(join(dir, `scan-${i}.png`), randomPixels(D), W, H);
  const up = await runCli(['upload', dir, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json']);
  expect(up.code, up.stderr).toBe(0);
  // 4 records fill group 0 (groups of 4 at 512 bits, 4x4): the spare starts group 1.
  spare = await ownerGroupUpload(c, keys, 'spare', randomPixels(D), W, H);
  expect([spare.replica.group!.group, spare.replica.members.length], 'the spare alone in group 1').toEqual([1, 1]);
});

afterAll(async () => {
  c?.close();
  await c1?.stop();
  await c2?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ----- a misbehaving C1's session -----

const S = 'session-1';
const cipher = (v: bigint) => codec.cipher(keys.pk.encrypt(v));
const P = wire.PaperStep;
/** A message of the paper's session family, labelled with its step. */
const msg = (step: wire.PaperStep, body: wire.PaperC1Message['body'], sessionId = S): wire.C1Message => ({
  sessionId,
  protocol: { $case: 'paper', value: { step, body } },
});
/** The same paper message labelled with another step. */
const withStep = (m: wire.C1Message, step: wire.PaperStep): wire.C1Message =>
  m.protocol?.$case === 'paper' ? { ...m, protocol: { $case: 'paper', value: { ...m.protocol.value, step } } } : m;
/** A message of the fast session family. */
const fastMsg = (body: wire.FastC1Message['body'], sessionId = S): wire.C1Message => ({
  sessionId,
  protocol: { $case: 'fast', value: { body } },
});
const open = (k = 1, sessionId = S) =>
  msg(P.PAPER_STEP_OPEN, { $case: 'open', value: { keyFingerprint: keys.pk.fingerprint(), k, requestId: 't' } }, sessionId);
const square = (values: Buffer[], step = P.PAPER_STEP_SSED_SM) => msg(step, { $case: 'square', value: { values } });
const multiply = (a: Buffer[], b: Buffer[]) => msg(P.PAPER_STEP_SSED_SM, { $case: 'multiply', value: { a, b } });
const score = (candidate: number, v = 5n) => ({ candidate, value: cipher(v) });
/** Step 4 with one seed and the given bounds (C2 then asks for the first bound's candidate, if any is not above the seed). */
const bounds = (seeds = [score(0)], rest: wire.MaskedScore[] = []) =>
  msg(P.PAPER_STEP_FNN_BOUNDS, { $case: 'bounds', value: { seeds, bounds: rest } });
const distance = (candidate: number) => msg(P.PAPER_STEP_FNN_DISTANCE, { $case: 'distance', value: score(candidate) });
const finish = () => msg(P.PAPER_STEP_RESULT, { $case: 'finish', value: {} });
/** Step 7's opening: `images` results of `pixels` values each, sent `chunkValues` per chunk. */
const retrievalOpen = (images: number, pixels = 1, chunkValues = 1) =>
  msg(P.PAPER_STEP_RETRIEVAL, { $case: 'retrievalOpen', value: { images, pixels, chunkValues } });
/** Step 7's chunk `index`, of `values` ciphertexts. */
const retrievalChunk = (index: number, values = 1) =>
  msg(P.PAPER_STEP_RETRIEVAL, {
    $case: 'retrievalChunk',
    value: { index, values: Array.from({ length: values }, () => cipher(1n)) },
  });
/** A whole retrieval of one result of one pixel: the opening and its one chunk. */
const retrieval = () => [retrievalOpen(1), retrievalChunk(0)];
const fastOpen = (shareTicket: string, over: Partial<wire.FastOpen> = {}) =>
  fastMsg({
    $case: 'open',
    value: {
      keyFingerprint: keys.pk.fingerprint(),
      pk1Fingerprint: keys.pk1.fingerprint(),
      k: 1,
      requestId: 't',
      shareTicket,
      groups: [],
      collectionId: Buffer.alloc(0),
      ...over,
    },
  });
const fastBounds = (items: wire.GroupValue[] = []) => fastMsg({ $case: 'bounds', value: { items } });
const fastDistance = (group = 0) => fastMsg({ $case: 'distance', value: { group, value: cipher(1n) } });
const fastFinish = () => fastMsg({ $case: 'finish', value: {} });
const fastRefined = (items: wire.GroupValue[] = []) => fastMsg({ $case: 'refined', value: { items } });

/** A doctor's valid share, deposited at C2: its ticket. */
async function share(): Promise<string> {
  const params = packingParams(keys.pk.bits, W, H, 255);
  const shares = await shareQuery(randomPixels(D), params, async (v) => v.map((x) => keys.pk.encrypt(x)));
  const { ticket } = await putShare({
    distance: shares.forC2.distance.map(residueToBytes),
    bound: shares.forC2.bound.map(residueToBytes),
    coarse: shares.forC2.coarse.map(residueToBytes),
  });
  return ticket;
}

/** Sends each message after the previous reply, as C1 does. */
const session = (messages: wire.C1Message[]) => rawSession(c.secure, messages);

interface SessionCase {
  name: string;
  code: Code;
  messages: () => wire.C1Message[] | Promise<wire.C1Message[]>;
}
const FAILED = Code.FAILED_PRECONDITION;
const INVALID = Code.INVALID_ARGUMENT;

const secret = () => keys.sk.toJSON() as unknown as { p: string; q: string };
const b = (x: bigint) => Buffer.from(cipherToBytes(x, keys.pk.cipherBytes));

const sessionCases: SessionCase[] = [
  // Messages after the end.
  { name: 'a square after finish', code: FAILED, messages: () => [open(), bounds(), finish(), square([cipher(2n)])] },
  { name: 'bounds after finish', code: FAILED, messages: () => [open(), bounds(), finish(), bounds()] },
  { name: 'finish twice', code: FAILED, messages: () => [open(), bounds(), finish(), finish()] },
  {
    name: 'a retrieval twice (the session closed after the first)',
    code: FAILED,
    messages: () => [open(), bounds(), finish(), ...retrieval(), retrievalOpen(1)],
  },
  {
    name: 'a square after the retrieval closed the session',
    code: FAILED,
    messages: () => [open(), bounds(), finish(), ...retrieval(), square([cipher(2n)])],
  },
  {
    name: 'a retrieval chunk beyond the count announced',
    code: FAILED,
    messages: () => [open(), bounds(), finish(), ...retrieval(), retrievalChunk(1)],
  },
  {
    name: 'a retrieval chunk out of order',
    code: FAILED,
    messages: () => [open(), bounds(), finish(), retrievalOpen(1, 3), retrievalChunk(0), retrievalChunk(2)],
  },
  {
    name: 'a retrieval chunk sent twice',
    code: FAILED,
    messages: () => [open(), bounds(), finish(), retrievalOpen(1, 2), retrievalChunk(0), retrievalChunk(0)],
  },
  { name: 'a retrieval chunk before the retrieval opened', code: FAILED, messages: () => [open(), bounds(), finish(), retrievalChunk(0)] },
  { name: 'a distance after C2 said done', code: FAILED, messages: () => [open(), bounds(), distance(0)] },
  {
    name: 'fast: a distance after finish',
    code: FAILED,
    messages: async () => [fastOpen(await share()), fastBounds(), fastFinish(), fastDistance()],
  },
  { name: 'fast: finish twice', code: FAILED, messages: async () => [fastOpen(await share()), fastBounds(), fastFinish(), fastFinish()] },
  // The wrong step or order.
  { name: 'finish before open', code: FAILED, messages: () => [finish()] },
  { name: 'finish right after open (before any bound)', code: FAILED, messages: () => [open(), finish()] },
  {
    name: "finish while a candidate's distance is awaited",
    code: FAILED,
    messages: () => [open(), bounds([score(0, 100n)], [score(1, 1n)]), finish()],
  },
  { name: 'a retrieval before finish', code: FAILED, messages: () => [open(), bounds(), retrievalOpen(1)] },
  { name: 'bounds twice', code: FAILED, messages: () => [open(), bounds([score(0, 100n)], [score(1, 1n)]), bounds()] },
  {
    name: 'the distance of a candidate that was not asked for',
    code: FAILED,
    messages: () => [open(), bounds([score(0, 100n)], [score(1, 1n)]), distance(2)],
  },
  { name: 'a retrieval before open', code: FAILED, messages: () => [retrievalOpen(1)] },
  { name: 'an open message labelled step SSED_SM', code: FAILED, messages: () => [withStep(open(), P.PAPER_STEP_SSED_SM)] },
  { name: 'a square labelled step OPEN', code: FAILED, messages: () => [open(), square([cipher(2n)], P.PAPER_STEP_OPEN)] },
  {
    name: 'a finish labelled step RETRIEVAL',
    code: FAILED,
    messages: () => [open(), bounds(), withStep(finish(), P.PAPER_STEP_RETRIEVAL)],
  },
  { name: 'a paper open after a fast open', code: FAILED, messages: async () => [fastOpen(await share()), open()] },
  { name: 'a fast open after a paper open', code: FAILED, messages: async () => [open(), fastOpen(await share())] },
  { name: 'fast open twice', code: FAILED, messages: async () => [fastOpen(await share()), fastOpen(await share())] },
  { name: 'fast: bounds twice', code: FAILED, messages: async () => [fastOpen(await share()), fastBounds(), fastBounds()] },
  { name: 'fast: a distance before bounds', code: FAILED, messages: async () => [fastOpen(await share()), fastDistance()] },
  {
    name: 'fast: a distance for a group not asked for',
    code: FAILED,
    messages: async () => [fastOpen(await share()), fastBounds(), fastDistance(3)],
  },
  { name: 'fast: finish before bounds', code: FAILED, messages: async () => [fastOpen(await share()), fastFinish()] },
  { name: 'fast: fine bounds before the coarse ones', code: FAILED, messages: async () => [fastOpen(await share()), fastRefined()] },
  {
    name: 'fast: fine bounds C2 did not ask for (§3.5a)',
    code: FAILED,
    messages: async () => [fastOpen(await share()), fastBounds(), fastRefined([{ group: 0, value: cipher(1n) }])],
  },
  { name: "fast: the paper's finish inside a fast session", code: FAILED, messages: async () => [fastOpen(await share()), finish()] },
  { name: 'a fast finish inside a paper session', code: FAILED, messages: () => [open(), bounds(), fastFinish()] },
  { name: 'fast: SM squaring inside a fast session', code: FAILED, messages: async () => [fastOpen(await share()), square([cipher(2n)])] },
  // Unknown sessions and steps.
  {
    name: 'a second message for an unknown session id',
    code: FAILED,
    messages: () => [open(), { ...square([cipher(2n)]), sessionId: 'unknown' }],
  },
  {
    name: 'a session opened with an empty id, then a message with an id',
    code: FAILED,
    messages: () => [open(1, ''), { ...square([cipher(2n)]), sessionId: S }],
  },
  { name: 'step UNSPECIFIED', code: INVALID, messages: () => [withStep(open(), P.PAPER_STEP_UNSPECIFIED)] },
  { name: 'step 99 (no such step)', code: INVALID, messages: () => [withStep(open(), 99 as wire.PaperStep)] },
  { name: 'a message without a body', code: INVALID, messages: () => [msg(P.PAPER_STEP_OPEN, undefined)] },
  { name: 'a fast message without a body', code: INVALID, messages: () => [fastMsg(undefined)] },
  { name: 'a message without a protocol (no case of the oneof)', code: INVALID, messages: () => [{ sessionId: S, protocol: undefined }] },
  // Values out of range.
  { name: 'open with k = 0', code: INVALID, messages: () => [open(0)] },
  { name: 'fast open with k = 0', code: INVALID, messages: async () => [fastOpen(await share(), { k: 0 })] },
  {
    name: 'fast open with a group layout of the wrong size',
    code: INVALID,
    messages: async () => [fastOpen(await share(), { groups: [{ group: 0, members: [0], digest: '' }] })],
  },
  {
    name: 'fast open with a share ticket already used',
    code: Code.NOT_FOUND,
    messages: async () => {
      const ticket = await share();
      const first = await session([fastOpen(ticket)]);
      expect(first.error, `the first use of the ticket: ${first.error?.details}`).toBeUndefined();
      return [fastOpen(ticket)];
    },
  },
  {
    name: 'fast bounds for a group that is not in the session',
    code: INVALID,
    messages: async () => [fastOpen(await share()), fastBounds([{ group: 7, value: cipher(1n) }])],
  },
  { name: 'bounds without a seed', code: INVALID, messages: () => [open(), bounds([], [score(1)])] },
  { name: 'bounds naming one candidate twice', code: INVALID, messages: () => [open(), bounds([score(0)], [score(0)])] },
  {
    name: 'multiply with lists of unequal length',
    code: INVALID,
    messages: () => [open(), multiply([cipher(2n), cipher(3n)], [cipher(2n)])],
  },
  { name: 'a retrieval with one image too many', code: INVALID, messages: () => [open(), bounds(), finish(), retrievalOpen(2)] },
  { name: 'a retrieval of images without pixels', code: INVALID, messages: () => [open(), bounds(), finish(), retrievalOpen(1, 0)] },
  { name: 'a retrieval in chunks of no value', code: INVALID, messages: () => [open(), bounds(), finish(), retrievalOpen(1, 4, 0)] },
  {
    name: 'a retrieval chunk larger than announced',
    code: INVALID,
    messages: () => [open(), bounds(), finish(), retrievalOpen(1, 4, 2), retrievalChunk(0, 3)],
  },
  {
    name: 'a last retrieval chunk larger than the rest',
    code: INVALID,
    messages: () => [open(), bounds(), finish(), retrievalOpen(1, 3, 2), retrievalChunk(0, 2), retrievalChunk(1, 2)],
  },
  {
    name: "a retrieval larger than C2's store holds (refused before any chunk)",
    code: Code.RESOURCE_EXHAUSTED,
    messages: () => [open(), bounds(), finish(), retrievalOpen(1, 0xffffffff, 1)],
  },
  { name: 'a square of N (not coprime)', code: INVALID, messages: () => [open(), square([b(keys.pk.n)])] },
  { name: 'a square of q, a factor of N', code: INVALID, messages: () => [open(), square([b(BigInt(secret().q))])] },
  { name: 'a square of N^2', code: INVALID, messages: () => [open(), square([b(keys.pk.n2)])] },
  { name: 'a square of empty bytes', code: INVALID, messages: () => [open(), square([Buffer.alloc(0)])] },
  { name: 'a square of 1 MiB of bytes', code: INVALID, messages: () => [open(), square([Buffer.alloc(1 << 20, 1)])] },
  { name: 'a multiply with 0 as its second factor', code: INVALID, messages: () => [open(), multiply([cipher(2n)], [b(0n)])] },
  { name: 'a bound = N^2', code: INVALID, messages: () => [open(), bounds([score(0)], [{ candidate: 1, value: b(keys.pk.n2) }])] },
  {
    name: 'a distance = N',
    code: INVALID,
    messages: () => [
      open(),
      bounds([score(0, 100n)], [score(1, 1n)]),
      msg(P.PAPER_STEP_FNN_DISTANCE, { $case: 'distance', value: { candidate: 1, value: b(keys.pk.n) } }),
    ],
  },
];

// ----- C2's unary services -----

const putShare = (s: wire.QueryShare) => rpc<wire.ShareTicket>((m, o, cb) => c.retrieval.putShare(s, m, o, cb));
/** C2's Retrieve, every part of it. */
const retrieve = async (ticket: string) => {
  const values: Uint8Array[] = [];
  for await (const part of retrieveParts(c.retrieval, ticket, new Date(Date.now() + DEADLINE_MS))) values.push(...part);
  return values;
};
const putGroup = (r: wire.ReplicaGroup) => rpc<wire.ReplicaReply>((m, o, cb) => c.replica.putGroup(r, m, o, cb));
const raw = (path: string, bytes: () => Buffer) => () => rawUnary(c.rawC2, path, bytes());
const b1 = (x: bigint) => Buffer.from(cipherToBytes(x, keys.pk1.cipherBytes));
const secret1 = () => keys.sk1.toJSON() as unknown as { p: string; q: string };
/** The spare's replica group with its change changed. */
const changeWith = (over: (g: wire.GroupChange) => Partial<wire.GroupChange>): wire.ReplicaGroup => ({
  ...spare.replica,
  group: { ...spare.replica.group!, ...over(spare.replica.group!) },
});
/** ... with its packed columns (under C1's key) changed. */
const columnsWith = (over: (p: wire.PackedColumns) => Partial<wire.PackedColumns>) =>
  changeWith((g) => ({ columns: { ...g.columns!, ...over(g.columns!) } }));
/** ... with its (only) member changed. */
const memberWith = (over: (m: wire.ReplicaMember) => Partial<wire.ReplicaMember>): wire.ReplicaGroup => ({
  ...spare.replica,
  members: spare.replica.members.map((m) => ({ ...m, ...over(m) })),
});
const PUT_GROUP = '/fnn.v1.Replica/PutGroup';
const at = <T extends Uint8Array>(list: T[], i: number, x: T) => list.map((y, j) => (j === i ? x : y));

const NOT_CIPHERTEXTS_UNDER_PK1: [string, () => Buffer][] = [
  ['N1 (not coprime with N1)', () => b1(keys.pk1.n)],
  ['q1, a factor of N1', () => b1(BigInt(secret1().q))],
  ['N1^2', () => b1(keys.pk1.n2)],
  ['empty bytes', () => Buffer.alloc(0)],
  ['1 MiB of bytes', () => Buffer.alloc(1 << 20, 1)],
];
const NOT_PROTOBUF: [string, () => Buffer][] = [
  ['one byte 0xff', () => Buffer.from([0xff])],
  ['wire type 7', () => Buffer.from([0x0f, 0x01])],
  ['a length prefix beyond the end', () => Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x41])],
];
const DESERIALIZE = /^Error deserializing request/;

interface UnaryCase {
  name: string;
  code: Code;
  run: () => Promise<unknown>;
  details?: RegExp;
}

const unaryCases: UnaryCase[] = [
  ...NOT_CIPHERTEXTS_UNDER_PK1.flatMap(([value, x]): UnaryCase[] => [
    {
      name: `Replica.PutGroup: a packed pixel column = ${value}`,
      code: INVALID,
      run: () => putGroup(columnsWith((p) => ({ distance: at(p.distance, 2, x()) }))),
    },
    {
      name: `Replica.PutGroup: a packed embedding column = ${value}`,
      code: INVALID,
      run: () => putGroup(columnsWith((p) => ({ bound: at(p.bound, 0, x()) }))),
    },
  ]),
  {
    name: 'Replica.PutGroup: a group version of 15 bytes',
    code: INVALID,
    run: () => putGroup(changeWith((g) => ({ version: g.version.subarray(1) }))),
  },
  { name: 'Replica.PutGroup: no group version', code: INVALID, run: () => putGroup(changeWith(() => ({ version: Buffer.alloc(0) }))) },
  { name: 'Replica.PutGroup: no group change', code: INVALID, run: () => putGroup({ ...spare.replica, group: undefined }) },
  {
    name: 'Replica.PutGroup: members but no packed columns',
    code: INVALID,
    run: () => putGroup(changeWith(() => ({ columns: undefined }))),
  },
  {
    name: 'Replica.PutGroup: packed columns but no members (an emptied group must send none)',
    code: INVALID,
    run: () => putGroup({ ...spare.replica, members: [] }),
  },
  {
    name: 'Replica.PutGroup: 15 of 16 packed pixel columns',
    code: INVALID,
    run: () => putGroup(columnsWith((p) => ({ distance: p.distance.slice(1) }))),
  },
  {
    name: 'Replica.PutGroup: 100,000 packed pixel columns for a 4x4 group',
    code: INVALID,
    run: () => putGroup(columnsWith((p) => ({ distance: Array(100_000).fill(p.distance[0]) }))),
  },
  {
    name: 'Replica.PutGroup: an embedding one short',
    code: INVALID,
    run: () => putGroup(columnsWith((p) => ({ bound: p.bound.slice(1) }))),
  },
  {
    name: "Replica.PutGroup: a member's lookup tag of 33 bytes",
    code: INVALID,
    run: () => putGroup(memberWith(() => ({ lookupTag: Buffer.alloc(33, 1) }))),
  },
  {
    name: 'Replica.PutGroup: an empty member lookup tag',
    code: INVALID,
    run: () => putGroup(memberWith(() => ({ lookupTag: Buffer.alloc(0) }))),
  },
  {
    name: 'Replica.PutGroup: a member slot outside the group (slot = 4)',
    code: INVALID,
    run: () => putGroup(memberWith(() => ({ slot: 4 }))),
  },
  { name: 'Replica.PutGroup: a member slot of 2^32 - 1', code: INVALID, run: () => putGroup(memberWith(() => ({ slot: 0xffffffff }))) },
  {
    name: 'Replica.PutGroup: two members in one slot',
    code: INVALID,
    run: () =>
      putGroup({
        ...spare.replica,
        members: [...spare.replica.members, { slot: spare.replica.members[0].slot, lookupTag: Buffer.alloc(32, 5) }],
      }),
  },
  {
    name: 'Replica.PutGroup: another key of C2',
    code: INVALID,
    run: () => putGroup({ ...spare.replica, keyFingerprint: '0123456789abcdef' }),
  },
  {
    name: "Replica.PutGroup: columns said to be under C2's key, not C1's",
    code: INVALID,
    run: () => putGroup({ ...spare.replica, pk1Fingerprint: keys.pk.fingerprint() }),
  },
  { name: 'Replica.PutGroup: 513x512 images', code: INVALID, run: () => putGroup({ ...spare.replica, width: 513, height: 512 }) },
  {
    name: 'Replica.PutGroup: images of another size than the replica (5x5)',
    code: INVALID,
    run: () => putGroup({ ...spare.replica, width: 5, height: 5 }),
  },
  {
    name: 'Replica.PutGroup: pixel depth differs from the replica (65535)',
    code: INVALID,
    run: () => putGroup({ ...spare.replica, maxValue: 65535 }),
  },
  { name: 'Replica.PutGroup: an empty message', code: INVALID, run: raw(PUT_GROUP, () => Buffer.alloc(0)) },
  {
    name: 'Replica.PutGroup: 65 MiB',
    code: Code.RESOURCE_EXHAUSTED,
    details: /larger than max/,
    run: raw(PUT_GROUP, () => Buffer.alloc(65 << 20)),
  },
  {
    name: 'Replica.PutGroup: width sent as bytes (skipped: width 0)',
    code: INVALID,
    run: raw(PUT_GROUP, () =>
      Buffer.from(
        new BinaryWriter()
          .uint32(10)
          .string(keys.pk.fingerprint())
          .uint32(18)
          .string(keys.pk1.fingerprint())
          .uint32(26)
          .bytes(Buffer.from([4]))
          .finish(),
      ),
    ),
  },
  {
    name: 'Replica.PutGroup: the group change sent as a varint (skipped: no group)',
    code: INVALID,
    run: raw(PUT_GROUP, () =>
      Buffer.concat([
        Buffer.from(wire.ReplicaGroup.encode({ ...spare.replica, group: undefined }).finish()),
        Buffer.from(new BinaryWriter().uint32(48).uint32(1).finish()),
      ]),
    ),
  },
  { name: 'Retrieval.Retrieve: a ticket of 1 MiB', code: Code.NOT_FOUND, run: () => retrieve('f'.repeat(1 << 20)) },
  { name: 'Retrieval.Retrieve: a ticket that is not hex', code: Code.NOT_FOUND, run: () => retrieve('../../etc/passwd') },
  { name: 'Retrieval.Retrieve: a share ticket (another kind of ticket)', code: Code.NOT_FOUND, run: async () => retrieve(await share()) },
  { name: 'Retrieval.Retrieve: an empty message', code: Code.NOT_FOUND, run: raw('/fnn.v1.Retrieval/Retrieve', () => Buffer.alloc(0)) },
  {
    name: 'PutShare: a value of 1 MiB',
    code: INVALID,
    run: () => putShare({ distance: [Buffer.alloc(1 << 20, 1)], bound: [], coarse: [] }),
  },
  {
    name: "PutShare: more values than the collection's images have pixels (held in memory for nothing)",
    code: INVALID,
    run: () => putShare({ distance: Array(100_000).fill(Buffer.from([1])), bound: [], coarse: [] }),
  },
  { name: 'PutShare: an empty share', code: INVALID, run: () => putShare({ distance: [], bound: [], coarse: [] }) },
  { name: 'PutShare: an empty message', code: INVALID, run: raw('/fnn.v1.Retrieval/PutShare', () => Buffer.alloc(0)) },
  ...([PUT_GROUP, '/fnn.v1.Retrieval/Retrieve', '/fnn.v1.Retrieval/PutShare', '/fnn.v1.Retrieval/Status'] as const).flatMap((path) =>
    NOT_PROTOBUF.map(([what, x]): UnaryCase => ({
      name: `${path.split('/').pop()} (raw bytes at ${path}): ${what}`,
      code: Code.INTERNAL,
      details: DESERIALIZE,
      run: raw(path, x),
    })),
  ),
];

async function expectUnchanged<T>(what: string, run: () => Promise<T>): Promise<T> {
  const before = await counts(c);
  const out = await run();
  const after = await counts(c); // throws if either daemon stopped answering
  expect(after, `${what}: a database changed`).toEqual(before);
  expect(c2.child.exitCode, `${what}: C2 exited`).toBeNull();
  expect(c1.child.exitCode, `${what}: C1 exited`).toBeNull();
  return out;
}

const openSessions = async () => (await rpc<wire.KeyHolderStatus>((m, o, cb) => c.retrieval.status({}, m, o, cb))).openSessions;

describe("C2's Session refuses a C1 that breaks the protocol, and keeps serving", () => {
  it.each(sessionCases.map((s) => [s.name, s] as const))('%s', async (name, s) => {
    await expectUnchanged(name, async () => {
      const messages = await s.messages();
      const { replies, error } = await session(messages);
      expect(error, `${name}: C2 must end the session with an error`).toBeDefined();
      expect(Code[error!.code], `${name}: expected ${Code[s.code]}, got ${Code[error!.code]} ("${error!.details}")`).toBe(Code[s.code]);
      expect(error!.details, `${name}: a refusal must not be an internal error`).not.toMatch(/internal error/);
      expect(replies.length, `${name}: C2 must answer every message before the bad one`).toBe(messages.length - 1);
    });
  });

  it.each(NOT_PROTOBUF.map(([what, x]) => [what, x] as const))(
    'a stream message that is not protobuf (%s) ends the session with INTERNAL',
    async (what, x) => {
      await expectUnchanged(what, async () => {
        const { error } = await rawStream(c.rawC2, '/fnn.v1.SecureComputation/Session', [x()]);
        expect(error && Code[error.code]).toBe('INTERNAL');
        expect(error!.details).toMatch(DESERIALIZE);
      });
    },
  );

  it('a session C1 abandons (cancels) half way is closed: no session stays open', async () => {
    await expectUnchanged('cancelled session', async () => {
      await new Promise<void>((resolve) => {
        const call = c.secure.session({ deadline: new Date(Date.now() + DEADLINE_MS) });
        call.on('data', () => call.cancel());
        call.on('error', () => resolve());
        call.write(open());
      });
    });
    for (let i = 0; i < 50 && (await openSessions()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await openSessions(), 'C2 still counts the cancelled session as open').toBe(0);
  });
});

describe("C2's Retrieval and Replica refuse malformed input with the right code and change nothing", () => {
  it.each(unaryCases.map((u) => [u.name, u] as const))('%s', async (name, u) => {
    await expectUnchanged(name, async () => {
      const error = await grpcError(u.run(), name);
      expect(Code[error.code], `${name}: expected ${Code[u.code]}, got ${Code[error.code]} ("${error.details}")`).toBe(Code[u.code]);
      if (u.details) expect(error.details).toMatch(u.details);
      else expect(error.details, `${name}: a refusal must say why, and not be internal`).not.toMatch(/^$|internal error|deserializing/);
    });
  });

  it('after every refusal C2 has no session open and a fast query through the CLI still works', async () => {
    expect(await openSessions()).toBe(0);
    const q = writeImage(join(work, 'q.png'), randomPixels(D), W, H);
    const run = await runCli(['query', q, '--c1', c1.address, '--c2', c2.address, '--keys', keys.dir, INSECURE, '--json']);
    expect(run.code, run.stderr).toBe(0);
  });
});
