import { beforeAll, describe, expect, it } from 'vitest';
import { localC1Crypto, localC2Crypto } from '../../crypto/backend';
import { ciphersToBlob, type FixedWidthValues } from '../../crypto/codec';
import { multiExpFixed } from '../../crypto/multiexp';
import { generateKeyPair, type PublicKey, type SecretKey } from '../../crypto/paillier';
import { plaintextNearest, squaredDistance } from '../../reference';
import { imageStats, SPREAD_SCALE } from '../../encoding/lower-bound';
import { WireCodec } from '../../wire/codec';
import type { C1QueryContext, CollectionAtC1 } from '../module';
import { encryptQuery } from '../paper/doctor';
import { protocolModule } from '../registry';
import { inProcessTransport } from '../in-process';
import { FastPeer } from './peer';
import { QUERY_PHASES, type QueryProgress } from '../progress';
import { RetrievalStore } from '../paper/retrieval';
import { TicketStore } from '../ticket-store';
import { shareQuery, type QueryShares } from './doctor';
import { blockLowerBound, coarseLowerBound } from './embedding';
import { fastSearch, type FastC1Crypto, type PackedRecordSource } from './c1';
import type { ReplicaSource } from './c2';
import type { C1Message, C2Message } from '../messages';
import type { Contribution, FastC2Body } from './messages';
import { packingParams, unpack, type Family, type PackingParams } from './params';
import { encryptGroup, type PackedColumns } from './records';

// C1's key pair (pk1, sk1) and C2's (pk2, sk2): each replica is under the other server's key.
let pk1: PublicKey, sk1: SecretKey, pk2: PublicKey, sk2: SecretKey;

beforeAll(async () => {
  ({ publicKey: pk1, secretKey: sk1 } = await generateKeyPair(512));
  ({ publicKey: pk2, secretKey: sk2 } = await generateKeyPair(512));
});

const localMultiExp = async (bases: FixedWidthValues, exponents: FixedWidthValues, modulus: bigint) =>
  multiExpFixed(bases, exponents, modulus);
const randomImage = (d: number, max: number) => Uint16Array.from({ length: d }, () => Math.floor(Math.random() * (max + 1)));

/** Both replicas of a collection, laid out in groups in upload order; `holes` leaves slots free (deleted records). */
async function collection(images: Uint16Array[], p: PackingParams, holes = new Set<number>()) {
  const G = p.groupSize;
  const members: (number | null)[][] = [];
  let position = 0;
  for (let candidate = 0; candidate < images.length; candidate++) {
    while (holes.has(position)) position++;
    (members[Math.floor(position / G)] ??= new Array<number | null>(G).fill(null))[position % G] = candidate;
    position++;
  }
  const encrypted: { c1: PackedColumns; c2: PackedColumns }[] = [];
  for (const m of members) {
    const enc = await encryptGroup(
      m.map((candidate) => (candidate === null ? null : images[candidate])),
      p,
      async (v) => v.map((x) => pk2.encrypt(x)),
      async (v) => v.map((x) => pk1.encrypt(x)),
    );
    encrypted.push({ c1: enc.forC1, c2: enc.forC2 });
  }
  const layout = members.map((m, group) => {
    const slots = m.map((candidate) => candidate ?? -1);
    return { group, members: slots, digest: slots.join(',') };
  });
  // Stored as the daemons store them: bytes at the key's width.
  const family = (c: PackedColumns, f: Family, key: PublicKey): FixedWidthValues => ({
    bytes: ciphersToBlob(c[f], key.cipherBytes),
    width: key.cipherBytes,
  });
  const constants = (c: PackedColumns): Record<Family, bigint> => ({
    distance: c.distanceConstant!,
    bound: c.boundConstant!,
    coarse: c.coarseConstant!,
  });
  const c1: PackedRecordSource = {
    params: p,
    count: images.length,
    groups: layout,
    collectionId: Buffer.alloc(16, 7),
    columns: async (group, f) => ({
      columns: family(encrypted[group].c1, f, pk2),
      constant: constants(encrypted[group].c1)[f],
    }),
  };
  const c2: ReplicaSource = {
    params: p,
    agree: (_id, groups) => groups.filter((g) => layout[g.group]?.digest !== g.digest).map((g) => g.group),
    columns: async (group, f, expected) => {
      if (layout[group]?.digest !== expected) throw new Error('group changed');
      return family(encrypted[group].c2, f, pk1);
    },
  };
  return { c1, c2 };
}

async function runFast(
  images: Uint16Array[],
  q: Uint16Array,
  k: number,
  p: PackingParams,
  holes?: Set<number>,
  spy?: bigint[],
  onProgress?: (p: QueryProgress) => void,
) {
  const { c1, c2 } = await collection(images, p, holes);
  const shares = new TicketStore<QueryShares>('query share');
  const query = await shareQuery(q, p, async (v) => v.map((m) => pk2.encrypt(m)));
  const ticket = shares.put(query.forC2);
  const watched = spy
    ? ({
        publicKey: sk2.publicKey,
        encrypt: (m: bigint) => sk2.encrypt(m),
        decrypt: (c: bigint) => {
          const v = sk2.decrypt(c);
          spy.push(...unpack(v, p.slotBits, p.groupSize));
          return v;
        },
      } as unknown as SecretKey)
    : sk2;
  const transport = inProcessTransport({
    crypto: localC2Crypto(sk2),
    retrievals: new RetrievalStore(),
    fast: { crypto: { sk2: watched, pk1: pk1, multiExp: localMultiExp }, replica: () => c2, shares },
  });
  const peer = new FastPeer(transport, 'fast-test');
  return fastSearch({ crypto: { pk2: pk2, sk1: sk1, multiExp: localMultiExp }, peer }, c1, query.forC1, ticket, k, 'test', onProgress);
}

/** The paper's brute force (bf) over the same images under pk2, through the registry as C1 runs it: its ranking. */
async function runBf(images: Uint16Array[], q: Uint16Array, k: number): Promise<number[]> {
  const encryptAll = async (values: bigint[]) => values.map((v) => pk2.encrypt(v));
  const pixels = await Promise.all(images.map((im) => encryptAll(Array.from(im, BigInt))));
  const stats = images.map((im) => {
    const st = imageStats(im);
    return { sum: pk2.encrypt(st.sum), spread: pk2.encrypt(st.spread) };
  });
  const records = { count: images.length, dimension: q.length, stats: async () => stats, pixels: async (c: number) => pixels[c] };
  const collection: CollectionAtC1 = {
    shape: () => ({ width: q.length, height: 1 }),
    snapshot: () => ({ ...records, encryptedId: (candidate) => Buffer.from([candidate]), sealedImage: () => Buffer.alloc(0) }),
    packedSnapshot: () => {
      throw new Error('bf reads no packed layout');
    },
  };
  const codec = new WireCodec(pk2.cipherBytes);
  const ctx: C1QueryContext = {
    collection,
    crypto: localC1Crypto(pk2),
    fast: undefined as unknown as FastC1Crypto,
    codec,
    openSession: async () => inProcessTransport({ crypto: localC2Crypto(sk2), retrievals: new RetrievalStore() }),
    k,
    requestId: 'test',
    onProgress: () => {},
  };
  const query = await encryptQuery(encryptAll, q);
  const { answer } = await protocolModule('bf').c1.answer(ctx, { $case: 'bf', value: codec.paperQueryToWire(query) });
  if (answer.$case !== 'bf') throw new Error(`bf answered as ${answer.$case}`);
  return answer.value.neighbours.map((n) => n.encryptedId[0]);
}

const expected = (images: Uint16Array[], q: Uint16Array, k: number) =>
  plaintextNearest(
    images.map((pixels, i) => ({ id: String(i), pixels })),
    q,
    k,
  ).map((r) => r.index);

describe('the fast protocol returns exactly the plaintext nearest neighbours', () => {
  it('C2 prepares the next group in best-first order while C1 works on the current one', async () => {
    const p = packingParams(512, 6, 6, 255);
    const images = Array.from({ length: 3 * p.groupSize }, () => randomImage(36, 255));
    const q = randomImage(36, 255);
    const { c1, c2 } = await collection(images, p);
    const events: string[] = [];
    const logged: ReplicaSource = {
      ...c2,
      columns: async (group, family, digest) => {
        if (family === 'distance') events.push(`C2 reads ${group}`);
        return c2.columns(group, family, digest);
      },
    };
    const shares = new TicketStore<QueryShares>('query share');
    const query = await shareQuery(q, p, async (v) => v.map((m) => pk2.encrypt(m)));
    const transport = inProcessTransport({
      crypto: localC2Crypto(sk2),
      retrievals: new RetrievalStore(),
      fast: { crypto: { sk2: sk2, pk1: pk1, multiExp: localMultiExp }, replica: () => logged, shares },
    });
    const peer = new FastPeer(transport, 'fast-test');
    const send = peer.fastDistance.bind(peer);
    peer.fastDistance = (group, value) => {
      events.push(`C1 sends ${group}`);
      return send(group, value);
    };
    const k = images.length; // nothing can be pruned: every group is visited
    const crypto = { pk2: pk2, sk1: sk1, multiExp: localMultiExp };
    const result = await fastSearch({ crypto, peer }, c1, query.forC1, shares.put(query.forC2), k, 'test');
    expect(result.candidates).toEqual(expected(images, q, k));
    const visits = events.filter((e) => e.startsWith('C1 sends')).map((e) => e.slice('C1 sends '.length));
    expect(visits.length, 'every group visited').toBe(3);
    for (let i = 1; i < visits.length; i++)
      expect(
        events.indexOf(`C2 reads ${visits[i]}`),
        `group ${visits[i]} prepared before C1 finished group ${visits[i - 1]} (${events.join('; ')})`,
      ).toBeLessThan(events.indexOf(`C1 sends ${visits[i - 1]}`));
    expect(events.filter((e) => e.startsWith('C2 reads')).length, 'each group read once').toBe(3);
  });

  it('on random collections spanning several groups, k = 1 and 3', async () => {
    const p = packingParams(512, 6, 6, 255);
    expect(p.groupSize).toBeGreaterThan(1);
    for (const k of [1, 3]) {
      const images = Array.from({ length: 10 }, () => randomImage(36, 255));
      const q = randomImage(36, 255);
      expect((await runFast(images, q, k, p)).candidates).toEqual(expected(images, q, k));
    }
  });

  it('with ties: equal distances rank by upload order, across groups', async () => {
    const p = packingParams(512, 6, 6, 255);
    const base = randomImage(36, 250);
    const images = [
      randomImage(36, 255),
      base.map((v) => v + 1),
      Uint16Array.from(base),
      randomImage(36, 255),
      Uint16Array.from(base),
      base.map((v) => v + 1),
    ];
    expect((await runFast(images, base, 4, p)).candidates).toEqual(expected(images, base, 4));
  });

  it('at the extremes: 16-bit pixels at 0 and 65535, d not a multiple of anything convenient', async () => {
    const p = packingParams(512, 7, 5, 65535);
    const d = 35;
    const images = [
      new Uint16Array(d).fill(65535),
      new Uint16Array(d),
      randomImage(d, 65535),
      new Uint16Array(d).fill(65535),
      randomImage(d, 65535),
    ];
    for (const q of [new Uint16Array(d).fill(65535), new Uint16Array(d), randomImage(d, 65535)])
      expect((await runFast(images, q, 2, p)).candidates).toEqual(expected(images, q, 2));
  });

  it('with free slots left by deleted records', async () => {
    const p = packingParams(512, 6, 6, 255);
    const images = Array.from({ length: 7 }, () => randomImage(36, 255));
    const q = randomImage(36, 255);
    expect((await runFast(images, q, 2, p, new Set([1, 4]))).candidates).toEqual(expected(images, q, 2));
  });

  it('refuses packing parameters that do not fit the keys', async () => {
    const p = packingParams(1024, 6, 6, 255);
    await expect(runFast([randomImage(36, 255)], randomImage(36, 255), 1, p)).rejects.toThrow(/key/);
  });

  it('prunes whole groups by the bound on images that differ in structure', async () => {
    const p = packingParams(512, 8, 8, 255);
    // Brightness levels far apart: the block bound separates them.
    const images = Array.from({ length: 12 }, (_, i) => new Uint16Array(64).fill(i * 20));
    const q = new Uint16Array(64).fill(3);
    const result = await runFast(images, q, 1, p);
    expect(result.candidates).toEqual(expected(images, q, 1));
    expect(result.rejected).toBeGreaterThanOrEqual(images.length - 2 * p.groupSize);
  });

  it("reports progress in groups: every bound, then groups settled, ending with all settled and the reply's rejected count", async () => {
    const p = packingParams(512, 8, 8, 255);
    const images = Array.from({ length: 12 }, (_, i) => new Uint16Array(64).fill(i * 20));
    const q = new Uint16Array(64).fill(3);
    const events: QueryProgress[] = [];
    const result = await runFast(images, q, 1, p, undefined, undefined, (e) => events.push(e));
    const groups = Math.ceil(images.length / p.groupSize);
    const bounds = events.filter((e) => e.phase === 'lower-bounds');
    const visits = events.filter((e) => e.phase === 'candidates');
    expect(
      events.map((e) => QUERY_PHASES.indexOf(e.phase)),
      'phases in order',
    ).toEqual([...events.map((e) => QUERY_PHASES.indexOf(e.phase))].sort());
    expect(
      bounds.map((e) => e.done),
      'one event per group bounded',
    ).toEqual(Array.from({ length: groups + 1 }, (_, i) => i));
    expect(new Set(events.map((e) => e.total)), 'totals are groups').toEqual(new Set([groups]));
    for (let i = 1; i < visits.length; i++) {
      expect(visits[i].done, 'groups settled never go back').toBeGreaterThanOrEqual(visits[i - 1].done);
      expect(visits[i].rejected, 'rejected never goes back').toBeGreaterThanOrEqual(visits[i - 1].rejected);
    }
    expect(visits.at(-1), 'the last event: every group settled').toEqual({
      phase: 'candidates',
      done: groups,
      total: groups,
      rejected: result.rejected,
    });
    expect(result.rejected, 'this collection prunes').toBeGreaterThan(0);
    expect(visits.at(-2)!.done, 'pruned groups were not visited one by one').toBeLessThan(groups);
  });

  it('shows C2 only masked values: no decrypted slot equals a true distance or bound', async () => {
    const p = packingParams(512, 6, 6, 255);
    const images = Array.from({ length: 6 }, () => randomImage(36, 255));
    const q = randomImage(36, 255);
    const seen: bigint[] = [];
    await runFast(images, q, 1, p, undefined, seen);
    expect(seen.length).toBeGreaterThan(0);
    const scale = SPREAD_SCALE * SPREAD_SCALE * BigInt(p.blockSize);
    const raw = new Set(
      images.flatMap((x) => [
        squaredDistance(x, q),
        blockLowerBound(x, q, p),
        coarseLowerBound(x, q, p),
        scale * squaredDistance(x, q),
        BigInt(p.coarseFactor) * scale * squaredDistance(x, q),
      ]),
    );
    for (const v of seen) expect(raw.has(v), 'C2 decrypted an unmasked value').toBe(false);
    for (const v of seen) expect(v > 1n << 60n, 'a masked value is suspiciously small').toBe(true);
  });
});

describe('the bound cascade (§3.5a): exact, and the coarse level prunes', () => {
  // 8x8: a 4x4 grid of 2x2-pixel blocks under a 2x2 coarse grid; 16x16 under one coarse block (m = 16).
  const shapes: [string, PackingParams][] = [
    ['8x8, 2x2 coarse grid', packingParams(512, 8, 8, 255)],
    ['16x16, one coarse block', packingParams(512, 16, 16, 255, { rows: 4, cols: 4 }, { rows: 1, cols: 1 })],
  ];

  it.each(shapes)('fast == bf == plaintext on random collections over several groups, with ties, k = 1 and 5 (%s)', async (_, p) => {
    const d = p.width * p.height;
    const base = randomImage(d, 250);
    for (const k of [1, 5]) {
      // Copies of the query's neighbours spread over the groups, so ties cross group and level boundaries.
      const images = Array.from({ length: 4 * p.groupSize + 1 }, (_, i) =>
        i % 4 === 1 ? Uint16Array.from(base) : i % 4 === 3 ? base.map((v) => v + 1) : randomImage(d, 255),
      );
      for (const q of [base, randomImage(d, 255)]) {
        const want = expected(images, q, k);
        const fast = await runFast(images, q, k, p);
        expect(fast.candidates, `fast, k = ${k}`).toEqual(want);
        // bf costs d secure multiplications per record: run on the query with ties only.
        if (q === base) expect(await runBf(images, q, k), `bf, k = ${k}`).toEqual(want);
        const [coarse, fine, distance] = fast.levels;
        expect(fast.levels.map((l) => l.level)).toEqual(['coarse', 'fine', 'distance']);
        expect(coarse.groupsVisited, 'every group gets its coarse bound').toBe(Math.ceil(images.length / p.groupSize));
        expect(coarse.recordsVisited).toBe(images.length);
        expect(coarse.groupsPruned + fine.groupsVisited, 'a group is pruned at the coarse level or refined').toBe(coarse.groupsVisited);
        expect(fine.groupsPruned + distance.groupsVisited, 'a refined group is pruned or has its distances computed').toBe(
          fine.groupsVisited,
        );
        expect(fast.rejected, 'rejected: the records of the groups whose distances were not computed').toBe(
          images.length - distance.recordsVisited,
        );
      }
    }
  });

  it('prunes at the coarse level: on a collection where most groups are far away, fewer groups get their fine bound than exist', async () => {
    const p = packingParams(512, 16, 16, 255, { rows: 4, cols: 4 }, { rows: 2, cols: 2 });
    const d = p.width * p.height;
    // The first groups hold the 5 images near the query; a dozen more groups hold images far from it, by brightness.
    const near = Array.from({ length: 5 }, () => Uint16Array.from({ length: d }, () => 10 + Math.floor(Math.random() * 5)));
    const far = Array.from({ length: 12 * p.groupSize }, (_, i) =>
      Uint16Array.from({ length: d }, () => 120 + (i % 7) * 15 + Math.floor(Math.random() * 5)),
    );
    const images = [...near, ...far];
    const groups = Math.ceil(images.length / p.groupSize);
    const q = Uint16Array.from({ length: d }, () => 12);
    for (const k of [1, 5]) {
      const result = await runFast(images, q, k, p);
      expect(result.candidates).toEqual(expected(images, q, k));
      const [coarse, fine, distance] = result.levels;
      expect(coarse.groupsVisited).toBe(groups);
      expect(fine.groupsVisited, `groups refined: ${fine.groupsVisited} of ${groups}`).toBeLessThan(groups / 2);
      expect(coarse.groupsPruned, 'groups pruned by the coarse bound alone').toBe(groups - fine.groupsVisited);
      expect(distance.groupsVisited).toBeLessThanOrEqual(fine.groupsVisited);
      expect(result.rejected).toBe(images.length - distance.recordsVisited);
    }
  });

  it('C1 refuses a C2 that asks to refine an unknown group or one twice, or for the distances of a group not refined', async () => {
    const p = packingParams(512, 8, 8, 255);
    const images = Array.from({ length: 2 * p.groupSize }, () => randomImage(64, 255));
    const { c1 } = await collection(images, p);
    const query = await shareQuery(images[0], p, async (v) => v.map((m) => pk2.encrypt(m)));
    const half = (group: number): Contribution => ({ group, masked: pk1.encrypt(0n), negatedMask: pk2.encrypt(0n) });
    const next = (body: Partial<Extract<FastC2Body, { kind: 'fast-next' }>>): FastC2Body => ({
      kind: 'fast-next',
      done: false,
      rejected: 0,
      ...body,
    });
    const cases: [string, FastC2Body[], RegExp][] = [
      ['refine an unknown group', [next({ refine: [half(7)] })], /does not exist/],
      ['refine a group twice', [next({ refine: [half(0)] }), next({ refine: [half(0)] })], /out of turn/],
      ['refine one group twice in one step', [next({ refine: [half(0), half(0)] })], /twice/],
      ['the distances of a group not refined', [next({ refine: [half(0)] }), next({ contribution: half(1) })], /out of turn/],
    ];
    for (const [what, script, error] of cases) {
      // A scripted C2: its halves of the coarse bounds, then the steps of the case in turn.
      const replies: FastC2Body[] = [{ kind: 'fast-contributions', items: [half(0), half(1)] }, ...script];
      const transport = {
        exchange: async (m: C1Message): Promise<C2Message> => ({ sessionId: m.sessionId, family: 'fast', body: replies.shift()! }),
        close: () => {},
      };
      const peer = new FastPeer(transport, 'scripted');
      await expect(
        fastSearch({ crypto: { pk2: pk2, sk1: sk1, multiExp: localMultiExp }, peer }, c1, query.forC1, 'ticket', 1, 'test'),
        what,
      ).rejects.toThrow(error);
    }
  });
});
