import { beforeAll, describe, expect, it } from 'vitest';
import { localC1Crypto, localC2Crypto, type C2Crypto } from '../../crypto/backend';
import { generateKeyPair, type PublicKey, type SecretKey } from '../../crypto/paillier';
import { imageStats, lowerBoundInt } from '../../encoding/lower-bound';
import { plaintextNearest, squaredDistance } from '../../reference';
import { encryptQuery } from './doctor';
import { inProcessTransport } from '../in-process';
import { PaperPeer } from './peer';
import type { EncryptedStats, RecordSource } from './records';
import { QUERY_PHASES, type QueryProgress } from '../progress';
import { RetrievalBlinding, RetrievalStore, unblindRetrieved } from './retrieval';
import { WireCodec } from '../../wire/codec';
import type { FastC1Crypto } from '../fast/c1';
import type { C1QueryContext, CollectionAtC1 } from '../module';
import { protocolModule } from '../registry';
import { sm, smSquare, type C1Context } from './sm';
import { ssed } from './ssed';
import { ssedlb } from './ssedlb';

let pk: PublicKey;
let sk: SecretKey;

beforeAll(async () => {
  ({ publicKey: pk, secretKey: sk } = await generateKeyPair(512));
});

const encryptAll = async (values: bigint[]) => values.map((v) => pk.encrypt(v));

/** An in-process C2 and a C1 context talking to it, as the daemons do over gRPC. */
async function session(keyHolder: C2Crypto = localC2Crypto(sk), k = 1): Promise<C1Context> {
  const peer = new PaperPeer(inProcessTransport({ crypto: keyHolder, retrievals: new RetrievalStore() }), 'test-session');
  await peer.open(pk.fingerprint(), k, 'test');
  return { crypto: localC1Crypto(pk), peer };
}

function randomImage(d: number, max: number): Uint16Array {
  return Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (max + 1)));
}

async function encryptedCollection(images: Uint16Array[]): Promise<RecordSource> {
  const pixels = await Promise.all(images.map((im) => encryptAll(Array.from(im, BigInt))));
  const stats: EncryptedStats[] = images.map((im) => {
    const s = imageStats(im);
    return { sum: pk.encrypt(s.sum), spread: pk.encrypt(s.spread) };
  });
  return {
    count: images.length,
    dimension: images[0].length,
    stats: async () => stats,
    pixels: async (candidate) => pixels[candidate],
  };
}

describe('SM (Algorithm 1)', () => {
  it('multiplies encrypted values, including negative ones and zero', async () => {
    const ctx = await session();
    const a = [0n, 1n, -1n, 65535n, -65535n, 123456789n, -(1n << 47n)];
    const b = [5n, -7n, -1n, 65535n, 3n, -987654n, 1n << 40n];
    const products = await sm(ctx, 'ssed-sm', await encryptAll(a), await encryptAll(b));
    expect(products.map((c) => sk.decryptSigned(c))).toEqual(a.map((x, i) => x * b[i]));
  });

  it('squares encrypted values (the specialisation SSED uses)', async () => {
    const ctx = await session();
    const a = [0n, 1n, -1n, 255n, -65535n, (1n << 47n) - 1n, -(1n << 47n)];
    const squares = await smSquare(ctx, 'ssed-sm', await encryptAll(a));
    expect(squares.map((c) => sk.decryptSigned(c))).toEqual(a.map((x) => x * x));
  });

  it('shows C2 only blinded values, never the inputs', async () => {
    const seen: bigint[] = [];
    const spy = localC2Crypto(sk);
    const watching: C2Crypto = {
      ...spy,
      squareBlinded: async (values) => {
        seen.push(...values.map((c) => sk.decryptSigned(c)));
        return spy.squareBlinded(values);
      },
    };
    const ctx = await session(watching);
    const a = Array.from({ length: 50 }, (_, i) => BigInt(i));
    await smSquare(ctx, 'ssed-sm', await encryptAll(a));
    // Every blinded value is a - r with r of 128 bits: far outside the inputs' range.
    for (const v of seen) expect(v < -(1n << 100n) || v > 1n << 100n).toBe(true);
  });
});

describe('SSED and SSEDLB', () => {
  it('SSED equals the plaintext squared distance on random and extreme images', async () => {
    const ctx = await session();
    const cases: [Uint16Array, Uint16Array][] = [
      [randomImage(37, 255), randomImage(37, 255)],
      [randomImage(50, 65535), randomImage(50, 65535)],
      [new Uint16Array(20).fill(65535), new Uint16Array(20)],
      [new Uint16Array(20).fill(9), new Uint16Array(20).fill(9)],
    ];
    for (const [x, y] of cases) {
      const query = await encryptQuery(encryptAll, y);
      const d = await ssed(ctx, 'ssed-sm', await encryptAll(Array.from(x, BigInt)), query);
      expect(sk.decrypt(d)).toBe(squaredDistance(x, y));
    }
  });

  it('SSEDLB equals the plaintext integer bound for every record', async () => {
    const ctx = await session();
    const images = [randomImage(64, 255), new Uint16Array(64), new Uint16Array(64).fill(255), randomImage(64, 65535)];
    const q = randomImage(64, 255);
    const query = await encryptQuery(encryptAll, q);
    const stats = images.map((im) => imageStats(im));
    const bounds = await ssedlb(
      ctx,
      stats.map((s) => ({ sum: pk.encrypt(s.sum), spread: pk.encrypt(s.spread) })),
      query,
    );
    expect(bounds.map((b) => sk.decryptSigned(b))).toEqual(stats.map((s) => lowerBoundInt(s, imageStats(q))));
  });
});

/** Phases in order, counts that never go back, and the last event: all settled, the reply's rejected count. */
function expectOrderlyProgress(events: QueryProgress[], records: number, rejected: number, what: string) {
  const order = events.map((e) => QUERY_PHASES.indexOf(e.phase));
  expect(order, `${what}: phases in order`).toEqual([...order].sort());
  for (let i = 1; i < events.length; i++) {
    if (events[i].phase === events[i - 1].phase)
      expect(events[i].done, `${what}: done never goes back`).toBeGreaterThanOrEqual(events[i - 1].done);
    expect(events[i].rejected, `${what}: rejected never goes back`).toBeGreaterThanOrEqual(events[i - 1].rejected);
  }
  for (const e of events) expect(Object.keys(e).sort(), `${what}: counts only`).toEqual(['done', 'phase', 'rejected', 'total']);
  expect(events.at(-1), `${what}: last event`).toEqual({
    phase: what === 'bf' ? 'distances' : 'candidates',
    done: records,
    total: records,
    rejected,
  });
}

describe('FNN and BF return exactly the plaintext nearest neighbours', () => {
  async function runBoth(images: Uint16Array[], q: Uint16Array, k: number) {
    const records = await encryptedCollection(images);
    const query = await encryptQuery(encryptAll, q);
    const expected = plaintextNearest(
      images.map((pixels, i) => ({ id: String(i), pixels })),
      q,
      k,
    ).map((r) => r.index);
    const out: Record<'fnn' | 'bf', { candidates: number[]; rejected: number; progress: QueryProgress[] }> = {} as never;
    // C1's view of the collection: the paper's layout only, each record's E_k(ID) standing for its candidate number.
    const collection: CollectionAtC1 = {
      shape: () => ({ width: records.dimension, height: 1 }),
      snapshot: () => ({ ...records, encryptedId: (candidate) => Buffer.from([candidate]), sealedImage: () => Buffer.alloc(0) }),
      packedSnapshot: () => {
        throw new Error('the paper protocols read no packed layout');
      },
    };
    const codec = new WireCodec(pk.cipherBytes);
    for (const protocol of ['fnn', 'bf'] as const) {
      const retrievals = new RetrievalStore();
      const progress: QueryProgress[] = [];
      const ctx: C1QueryContext = {
        collection,
        crypto: localC1Crypto(pk),
        fast: undefined as unknown as FastC1Crypto,
        codec,
        openSession: async () => inProcessTransport({ crypto: localC2Crypto(sk), retrievals }),
        k,
        requestId: 'test',
        onProgress: (p) => progress.push(p),
        // Step 7 in chunks of 5 ciphertexts, dividing no image here: chunks straddle results.
        retrievalChunkValues: 5,
      };
      // The protocol's C1 side from the registry, fed the PaperQuery as the wire carries it.
      const { answer, stats } = await protocolModule(protocol).c1.answer(ctx, { $case: protocol, value: codec.paperQueryToWire(query) });
      if (answer.$case !== protocol) throw new Error(`${protocol} answered as ${answer.$case}`);
      const candidates = answer.value.neighbours.map((n) => n.encryptedId[0]);
      const rejected = Number(stats.bound?.rejected ?? 0n);
      expect(candidates, `${protocol} ranking`).toEqual(expected);
      expect(stats.total, `${protocol} total`).toBe(BigInt(images.length));
      expect(stats.bound === undefined, `${protocol} reports a bound stage exactly when it has one`).toBe(protocol === 'bf');
      expectOrderlyProgress(progress, images.length, rejected, protocol);
      // Step 7: the doctor recovers exactly the neighbours' pixels.
      const d = records.dimension;
      const blinded = retrievals.take(answer.value.retrievalTicket);
      expect(blinded.length, `${protocol}: C2 holds d values per result`).toBe(candidates.length * d);
      candidates.forEach((c, i) => {
        const r = new RetrievalBlinding(answer.value.neighbours[i].blindingSeed, pk.n).next(d);
        expect(unblindRetrieved(pk.n, blinded.slice(i * d, (i + 1) * d), r, 65535), `${protocol} retrieved image`).toEqual(
          Array.from(images[c]),
        );
      });
      out[protocol] = { candidates, rejected, progress };
    }
    return out;
  }

  it('on random collections, for k = 1, 2 and 3', async () => {
    for (const k of [1, 2, 3]) {
      const images = Array.from({ length: 9 }, () => randomImage(23, 255));
      await runBoth(images, randomImage(23, 255), k);
    }
  });

  it('on ties: equal distances rank by upload order, in both protocols', async () => {
    const base = randomImage(16, 200);
    const plusOne = base.map((v) => v + 1);
    const images = [randomImage(16, 255), plusOne, Uint16Array.from(base), plusOne.slice(), Uint16Array.from(base)];
    // base appears at 2 and 4 (distance 0), base+1 at 1 and 3 (distance 16).
    await runBoth(images, base, 4);
  });

  it('with extreme values: pixels at 0 and at the 16-bit maximum, and a query equal to a record', async () => {
    const images = [new Uint16Array(12).fill(65535), new Uint16Array(12), randomImage(12, 65535), new Uint16Array(12).fill(32768)];
    await runBoth(images, new Uint16Array(12).fill(65535), 1);
    await runBoth(images, new Uint16Array(12).fill(1), 2);
  });

  it('FNN rejects records by the bound when the collection is spread out', async () => {
    // Constant images far apart in brightness: the bound is tight for them.
    const images = Array.from({ length: 8 }, (_, i) => new Uint16Array(30).fill(i * 30));
    const { fnn } = await runBoth(images, new Uint16Array(30).fill(2), 1);
    expect(fnn.rejected).toBeGreaterThanOrEqual(6);
  });

  it("reports FNN's rejections as they happen, and only distances for BF", async () => {
    // Query 100: record 1 (50) beats the seed, 2 (200) is rejected, 3 (60) is still computed, and so on.
    const images = [0, 50, 200, 60, 210, 70, 220, 80].map((v) => new Uint16Array(30).fill(v));
    const { fnn, bf } = await runBoth(images, new Uint16Array(30).fill(100), 1);
    expect(
      fnn.progress.some((p) => p.phase === 'candidates' && p.rejected > 0 && p.done < p.total),
      'a rejection seen before the end',
    ).toBe(true);
    expect(fnn.progress.filter((p) => p.phase === 'lower-bounds').at(-1)).toEqual({
      phase: 'lower-bounds',
      done: 8,
      total: 8,
      rejected: 0,
    });
    expect(new Set(bf.progress.map((p) => p.phase))).toEqual(new Set(['distances']));
    expect(bf.progress.map((p) => p.done)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('k larger than the collection returns every record, ranked', async () => {
    const images = [randomImage(8, 255), randomImage(8, 255)];
    await runBoth(images, randomImage(8, 255), 2);
  });
});
