import { beforeAll, describe, expect, it } from 'vitest';
import { localC1Crypto, localC2Crypto } from '../../crypto/backend';
import { generateKeyPair, type PublicKey, type SecretKey } from '../../crypto/paillier';
import { imageStats } from '../../encoding/lower-bound';
import { isFnnError, type FnnErrorKind } from '../../errors';
import { plaintextNearest } from '../../reference';
import { residueToBytes, WireCodec } from '../../wire/codec';
import type { FastC1Crypto } from '../fast/c1';
import { inProcessTransport } from '../in-process';
import type { C1Message, PaperC1Body, SessionTransport } from '../messages';
import type { C1QueryContext, C2SessionDeps, CollectionAtC1, DoctorContext } from '../module';
import { C2SessionStream } from '../session';
import { bigintBytes } from '../ticket-store';
import { generateSymmetricKey, RecordKey } from '../../crypto/symmetric';
import { sealImage } from '../../encoding/sealed-image';
import { answerPaperQuery } from './c1';
import { encryptQuery, paperNeighbours } from './doctor';
import type { EncryptedStats, RecordSource } from './records';
import { BLINDING_SEED_BYTES, RetrievalBlinding, RetrievalStore } from './retrieval';

// Step 7 (docs/PROTOCOLS.md §2.7) in chunks, in-process: C1's E(m + r) to C2
// chunk by chunk, C2's m + r to the doctor part by part, the doctor's
// reassembly; and C2 refusing a C1 that sends chunks out of order, too many,
// too large, or more than its store holds. (The same through the daemons with
// a small message limit: client/src/paper-layout-in-parts.e2e.test.ts.)

let pk: PublicKey;
let sk: SecretKey;

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
});

const D = 13;
const encryptAll = async (values: bigint[]) => values.map((v) => pk.encrypt(v));
const randomImage = (d: number) => Uint16Array.from({ length: d }, () => Math.floor(Math.random() * 256));

async function encryptedCollection(images: Uint16Array[]): Promise<CollectionAtC1> {
  const pixels = await Promise.all(images.map((im) => encryptAll(Array.from(im, BigInt))));
  const stats: EncryptedStats[] = images.map((im) => {
    const s = imageStats(im);
    return { sum: pk.encrypt(s.sum), spread: pk.encrypt(s.spread) };
  });
  const records: RecordSource = { count: images.length, dimension: D, stats: async () => stats, pixels: async (c) => pixels[c] };
  return {
    shape: () => ({ width: D, height: 1 }),
    // Each record's E_k(ID) stands for its candidate number.
    snapshot: () => ({ ...records, encryptedId: (candidate) => Buffer.from([candidate]), sealedImage: () => Buffer.alloc(0) }),
    packedSnapshot: () => {
      throw new Error('the paper protocols read no packed layout');
    },
  };
}

/** An in-process C2 that counts the values of every retrieval chunk C1 sends it. */
function watchedC2(deps: C2SessionDeps): { transport: SessionTransport; chunks: number[] } {
  const inner = inProcessTransport(deps);
  const chunks: number[] = [];
  return {
    chunks,
    transport: {
      exchange: (m) => {
        if (m.family === 'paper' && m.body.kind === 'retrieval-chunk') chunks.push(m.body.values.length);
        return inner.exchange(m);
      },
      close: () => inner.close(),
    },
  };
}

/** The doctor's side over this store: C2's Retrieve yields m + r in parts of `partValues`. */
function doctorOver(retrievals: RetrievalStore, partValues: number, recordKey?: RecordKey): DoctorContext {
  const unused = () => Promise.reject(new Error('not used by the paper retrieval'));
  return {
    pk2: pk,
    recordKey: recordKey ?? (undefined as never),
    codec: new WireCodec(pk.cipherBytes),
    encrypt: encryptAll,
    collection: unused,
    putShare: unused,
    retrieve: async function* (ticket) {
      const values = retrievals.take(ticket);
      for (let at = 0; at < values.length; at += partValues) yield values.slice(at, at + partValues).map(residueToBytes);
    },
  };
}

/** One fnn query through C1's and the doctor's real code; the neighbours' pixels and the chunks C1 sent. */
async function query(images: Uint16Array[], q: Uint16Array, k: number, chunkValues: number, partValues: number) {
  const retrievals = new RetrievalStore();
  const c2 = watchedC2({ crypto: localC2Crypto(sk), retrievals });
  const codec = new WireCodec(pk.cipherBytes);
  const ctx: C1QueryContext = {
    collection: await encryptedCollection(images),
    crypto: localC1Crypto(pk),
    fast: undefined as unknown as FastC1Crypto,
    codec,
    openSession: async () => c2.transport,
    k,
    requestId: 'test',
    retrievalChunkValues: chunkValues,
  };
  const { answer } = await answerPaperQuery(ctx, 'fnn', codec.paperQueryToWire(await encryptQuery(encryptAll, q)));
  if (answer.$case !== 'fnn') throw new Error(`fnn answered as ${answer.$case}`);
  for (const n of answer.value.neighbours) expect(n.blindingSeed.length, "C1's reply carries a seed per result").toBe(BLINDING_SEED_BYTES);
  const neighbours = await paperNeighbours(doctorOver(retrievals, partValues), answer.value, {
    width: D,
    height: 1,
    maxValue: 255,
    pixels: q,
  });
  expect(retrievals.bytes, 'the doctor took the result: C2 holds nothing').toBe(0);
  return {
    candidates: neighbours.map((n) => n.encryptedId[0]),
    pixels: neighbours.map((n) => Array.from(n.image.pixels)),
    chunks: c2.chunks,
  };
}

describe('a retrieval in chunks returns exactly the nearest neighbours', () => {
  it.each([1, 5])('k = %i: many chunks and parts give the same images as one message, and the plaintext ones', async (k) => {
    const images = Array.from({ length: 7 }, () => randomImage(D));
    const q = randomImage(D);
    const expected = plaintextNearest(
      images.map((pixels, i) => ({ id: String(i), pixels })),
      q,
      k,
    ).map((r) => r.index);
    // One chunk and one part (the old single message), then chunks of 4 and parts of 3: both cut across results.
    const whole = await query(images, q, k, k * D, k * D);
    const split = await query(images, q, k, 4, 3);
    expect(whole.chunks, 'one chunk holds the whole retrieval').toEqual([k * D]);
    expect(split.chunks.length, 'C1 sent ceil(k d / 4) chunks').toBe(Math.ceil((k * D) / 4));
    expect(split.chunks.slice(0, -1).every((n) => n === 4) && split.chunks.at(-1)! <= 4, 'each chunk at most 4 ciphertexts').toBe(true);
    expect(split.candidates, 'the plaintext ranking').toEqual(expected);
    expect(split.pixels, 'the plaintext images').toEqual(expected.map((i) => Array.from(images[i])));
    expect(split, 'the same answer as in one message').toEqual({ ...whole, chunks: split.chunks });
  });

  it("the doctor takes the metadata from C1's sealed record, and refuses one whose pixels are not the retrieved ones", async () => {
    const key = new RecordKey(generateSymmetricKey());
    const seed = Buffer.alloc(BLINDING_SEED_BYTES, 9);
    const m = randomImage(D);
    const r = new RetrievalBlinding(seed, pk.n).next(D);
    const image = { width: D, height: 1, maxValue: 255, pixels: m };
    const other = { ...image, pixels: m.map((v) => (v + 1) % 256) };
    const retrievals = new RetrievalStore();
    const answerWith = (sealedImage: Buffer) => ({
      neighbours: [{ encryptedId: Buffer.from([0]), blindingSeed: seed, sealedImage }],
      retrievalTicket: retrievals.put(Array.from(m, (v, i) => (BigInt(v) + r[i]) % pk.n)),
    });
    const [n] = await paperNeighbours(doctorOver(retrievals, 5, key), answerWith(sealImage(key, image, { label: 'glioma' })), image);
    expect([Array.from(n.image.pixels), n.metadata]).toEqual([Array.from(m), { label: 'glioma' }]);
    await expect(
      paperNeighbours(doctorOver(retrievals, 5, key), answerWith(sealImage(key, other, { label: 'glioma' })), image),
    ).rejects.toThrow(/result 1: the retrieved image differs from the record C1 named/);
  });

  it('the doctor refuses a C2 that returns more or fewer values than C1 has results', async () => {
    const retrievals = new RetrievalStore();
    const seed = Buffer.alloc(BLINDING_SEED_BYTES, 7);
    const answer = {
      neighbours: [{ encryptedId: Buffer.from([0]), blindingSeed: seed, sealedImage: Buffer.alloc(0) }],
      retrievalTicket: '',
    };
    const image = { width: D, height: 1, maxValue: 255, pixels: randomImage(D) };
    const r = new RetrievalBlinding(seed, pk.n).next(D + 1);
    for (const values of [r.slice(0, D - 1), r]) {
      answer.retrievalTicket = retrievals.put(values);
      await expect(paperNeighbours(doctorOver(retrievals, 5), answer, image)).rejects.toThrow(/disagree on the number of results/);
    }
  });
});

describe("the blinding r, expanded from C1's seed", () => {
  it('is the same at C1 and the doctor however it is read, below N, and another for another seed', () => {
    const seed = Buffer.alloc(BLINDING_SEED_BYTES, 1);
    const all = new RetrievalBlinding(seed, pk.n).next(50);
    const inParts = new RetrievalBlinding(seed, pk.n);
    expect([...inParts.next(7), ...inParts.next(0), ...inParts.next(43)]).toEqual(all);
    expect(all.every((r) => r >= 0n && r < pk.n)).toBe(true);
    expect(new Set(all).size, 'no repeated value').toBe(50);
    expect(new RetrievalBlinding(Buffer.alloc(BLINDING_SEED_BYTES, 2), pk.n).next(50)).not.toEqual(all);
  });

  it('needs a seed of 32 bytes', () => {
    expect(() => new RetrievalBlinding(Buffer.alloc(16), pk.n)).toThrow(/32 bytes, not 16/);
  });
});

// ----- C2 against a C1 that breaks the retrieval -----

const S = 'session-1';
const paper = (body: PaperC1Body, step: 'open' | 'fnn-bounds' | 'result' | 'retrieval'): C1Message => ({
  sessionId: S,
  family: 'paper',
  step,
  body,
});
/** A session up to step 7: opened with k = 1, one seed, finished (C2 ranks candidate 0). */
const finished = (): C1Message[] => [
  paper({ kind: 'open', keyFingerprint: pk.fingerprint(), k: 1, requestId: 'r' }, 'open'),
  paper({ kind: 'bounds', seeds: [{ candidate: 0, value: pk.encrypt(5n) }], bounds: [] }, 'fnn-bounds'),
  paper({ kind: 'finish' }, 'result'),
];
const openRetrieval = (images: number, pixels: number, chunkValues: number) =>
  paper({ kind: 'retrieval-open', images, pixels, chunkValues }, 'retrieval');
const chunk = (index: number, values: bigint[]) => paper({ kind: 'retrieval-chunk', index, values }, 'retrieval');
const ciphers = (n: number, from = 0) => Array.from({ length: n }, (_, i) => pk.encrypt(BigInt(from + i)));

/** Sends the messages in order; the last must be refused: its kind and reason, and how many were answered. */
async function refusal(
  session: C2SessionStream,
  messages: C1Message[],
): Promise<{ kind: FnnErrorKind; message: string; answered: number }> {
  let answered = 0;
  for (const m of messages) {
    try {
      await session.handle(m);
      answered++;
    } catch (error) {
      if (!isFnnError(error)) throw error;
      return { kind: error.kind, message: error.message, answered };
    }
  }
  throw new Error(`all ${messages.length} messages were answered`);
}

describe('C2 takes a retrieval only as announced', () => {
  // One result of 5 values in chunks of 2: chunks 0 and 1 hold 2, chunk 2 holds 1.
  it.each([
    ['a chunk out of order', () => [chunk(1, ciphers(2))], 'protocol-state', /chunk 1 is out of order: chunk 0 is next/],
    ['a chunk twice', () => [chunk(0, ciphers(2)), chunk(0, ciphers(2))], 'protocol-state', /chunk 0 is out of order: chunk 1 is next/],
    [
      'a chunk beyond the count announced',
      () => [chunk(0, ciphers(2)), chunk(1, ciphers(2)), chunk(2, ciphers(1)), chunk(3, ciphers(1))],
      'protocol-state',
      /chunk 3 is beyond the 3 announced/,
    ],
    ['a chunk larger than announced', () => [chunk(0, ciphers(3))], 'invalid-input', /chunk 0 holds 3 values, expected 2/],
    [
      'a last chunk larger than the rest',
      () => [chunk(0, ciphers(2)), chunk(1, ciphers(2)), chunk(2, ciphers(2))],
      'invalid-input',
      /chunk 2 holds 2 values, expected 1/,
    ],
    ['a chunk of a value that is no ciphertext', () => [chunk(0, [pk.encrypt(1n), pk.n2])], 'invalid-input', /invalid ciphertext/],
    ['a second opening', () => [openRetrieval(1, 5, 2)], 'protocol-state', /unexpected retrieval message in phase retrieving/],
  ] as const)('refuses %s', async (_what, after, kind, reason) => {
    const retrievals = new RetrievalStore();
    const session = new C2SessionStream({ crypto: localC2Crypto(sk), retrievals });
    const messages = [...finished(), openRetrieval(1, 5, 2), ...after()];
    const r = await refusal(session, messages);
    expect([r.kind, r.answered], r.message).toEqual([kind, messages.length - 1]);
    expect(r.message).toMatch(reason);
    session.close();
    // Only a retrieval that was complete before the bad chunk keeps its result (under its ticket, for the doctor).
    const complete = messages.filter((m) => m.family === 'paper' && m.body.kind === 'retrieval-chunk').length > 3;
    expect([retrievals.bytes, retrievals.size], 'the session ended: nothing else is held for it').toEqual(
      complete ? [5 * bigintBytes(pk.n - 1n), 1] : [0, 0],
    );
  });

  it.each([
    [
      'a chunk before the retrieval opened',
      () => [chunk(0, ciphers(1))],
      'protocol-state',
      /unexpected retrieval chunk message in phase finished/,
    ],
    ['an opening with one image too many', () => [openRetrieval(2, 5, 2)], 'invalid-input', /one blinded image per result/],
    ['an opening of images without pixels', () => [openRetrieval(1, 0, 2)], 'invalid-input', /at least one pixel/],
    ['an opening in chunks of no value', () => [openRetrieval(1, 5, 0)], 'invalid-input', /at least one value/],
    [
      'an opening larger than the store holds',
      () => [openRetrieval(1, 0xffffffff, 1000)],
      'resource-exhausted',
      /C2 holds 0 retrieval tickets/,
    ],
  ] as const)('refuses %s', async (_what, after, kind, reason) => {
    const session = new C2SessionStream({ crypto: localC2Crypto(sk), retrievals: new RetrievalStore() });
    const messages = [...finished(), ...after()];
    const r = await refusal(session, messages);
    expect([r.kind, r.answered], r.message).toEqual([kind, messages.length - 1]);
    expect(r.message).toMatch(reason);
  });

  it("reserves the whole result against the store's bound at the opening, and gives it back if the session ends early", async () => {
    const perResult = 5 * bigintBytes(pk.n - 1n);
    // Room for one result of 5 values, not two.
    const retrievals = new RetrievalStore({ limits: { total: { entries: 10, bytes: perResult + perResult / 2 } } });
    const first = new C2SessionStream({ crypto: localC2Crypto(sk), retrievals });
    for (const m of [...finished(), openRetrieval(1, 5, 2), chunk(0, ciphers(2))]) await first.handle(m);
    expect(retrievals.bytes, 'the opening reserved the whole result').toBe(perResult);
    const second = new C2SessionStream({ crypto: localC2Crypto(sk), retrievals });
    const r = await refusal(second, [...finished(), openRetrieval(1, 5, 2)]);
    expect([r.kind, r.message]).toEqual(['resource-exhausted', expect.stringMatching(/C2 holds 1 retrieval tickets/)]);
    first.close();
    expect(retrievals.bytes, 'the first session ended before its last chunk: its space is back').toBe(0);
    const third = new C2SessionStream({ crypto: localC2Crypto(sk), retrievals });
    const replies = [];
    for (const m of [...finished(), openRetrieval(1, 5, 2), chunk(0, ciphers(2, 10)), chunk(1, ciphers(2, 12)), chunk(2, ciphers(1, 14))])
      replies.push((await third.handle(m)).body);
    expect(replies.slice(3)).toEqual([
      { kind: 'accepted', next: 0, chunks: 3 },
      { kind: 'accepted', next: 1, chunks: 3 },
      { kind: 'accepted', next: 2, chunks: 3 },
      { kind: 'ticket', ticket: expect.stringMatching(/^[0-9a-f]{32}$/) },
    ]);
    third.close();
    const last = replies.at(-1)!;
    expect(retrievals.bytes, 'a filled result keeps its space after the session').toBe(perResult);
    expect(retrievals.take(last.kind === 'ticket' ? last.ticket : ''), 'the decrypted chunks in order').toEqual([10n, 11n, 12n, 13n, 14n]);
    expect(retrievals.bytes).toBe(0);
  });
});
