import { Client, credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import * as wire from '@fnn/proto';
import { plaintextNearest } from '@fnn/shared';
import {
  BF,
  D,
  expectCode,
  FAST,
  FNN,
  G,
  isFast,
  paperRequest,
  query,
  randomImage,
  RPC_DEADLINE_MS,
  useFixture,
  type Fixture,
  protocolOf,
  totalOf,
  rejectedOf,
} from './testing/fixtures';

// QueryWithProgress on real C1 and C2 daemons: counts-only progress events in
// phase order that never go back, then the very answer Query gives; a refused
// query ends the stream with its code and no events.

let f: Fixture;

useFixture({}, (started) => (f = started));

// ----- QueryWithProgress: the same query, with progress while it runs -----

/**
 * QueryWithProgress read below the generated client: each event's bytes as
 * they came off the wire, so the test sees everything C1 sent, not only the
 * fields the generated decoder knows.
 */
function queryWithProgress(request: wire.QueryRequest): Promise<{ events: Buffer[]; error?: ServiceError }> {
  const raw = new Client(f.c1.address, credentials.createInsecure());
  return new Promise((resolve) => {
    const events: Buffer[] = [];
    const call = raw.makeServerStreamRequest(
      '/fnn.v1.Database/QueryWithProgress',
      (r: wire.QueryRequest) => Buffer.from(wire.QueryRequest.encode(r).finish()),
      (bytes: Buffer) => bytes,
      request,
      new Metadata(),
      { deadline: new Date(Date.now() + RPC_DEADLINE_MS) },
    );
    const done = (error?: ServiceError) => {
      raw.close();
      resolve({ events, error });
    };
    call.on('data', (bytes: Buffer) => events.push(bytes));
    call.on('error', done);
    call.on('status', (s) => {
      if (s.code === Code.OK) done();
    });
  });
}

/** What a doctor gets from a reply: the neighbours (ids and exact pixels) and the counts. */
async function answerOf(reply: wire.QueryReply) {
  const neighbours = protocolOf(reply) === FAST ? f.openResults(reply) : await f.redeem(reply);
  return { neighbours, total: totalOf(reply), rejected: rejectedOf(reply), protocol: protocolOf(reply), tag: reply.tag };
}

describe('QueryWithProgress', () => {
  it.each([
    ['FAST', FAST, 'candidates'],
    ['FNN', FNN, 'candidates'],
    ['BF', BF, 'distances'],
  ] as const)(
    '%s: counts-only progress in phase order that never goes back, then the answer Query gives',
    async (name, protocol, lastPhase) => {
      const pixels = randomImage(D);
      const k = 2;
      // A fast query's share at C2 is used once: each call gets its own request for the same image.
      const request = () => f.requestFor(pixels, protocol, k);
      const unary = await answerOf(await query(f.main.db, await request()));
      const { events, error } = await queryWithProgress(await request());
      expect(error, `${name}: the stream failed`).toBeUndefined();
      const decoded = events.map((bytes) => wire.QueryEvent.decode(bytes));
      const last = decoded.at(-1)?.event;
      expect(last?.$case, `${name}: the last event is the reply`).toBe('reply');
      const progress = decoded.slice(0, -1).map((e, i) => {
        expect(e.event?.$case, `${name}: only the last event is a reply`).toBe('progress');
        // Nothing on the wire but the four counts: re-encoding the decoded event gives the same bytes
        // (no field the decoder skipped), and it is far smaller than one ciphertext.
        expect(Buffer.from(wire.QueryEvent.encode(e).finish()), `${name}: event ${i} carries unknown fields`).toEqual(events[i]);
        expect(events[i].length, `${name}: event ${i} is too large for counts`).toBeLessThan(40);
        const value = (e.event as { $case: 'progress'; value: wire.QueryProgress }).value;
        expect(Object.keys(value).sort()).toEqual(['done', 'phase', 'rejected', 'total']);
        return value;
      });
      expect(progress.length, `${name}: at least each phase's start and end`).toBeGreaterThanOrEqual(2);
      const phases = progress.map((p) => p.phase);
      expect(phases, `${name}: phases in order`).toEqual([...phases].sort((a, b) => a - b));
      for (let i = 1; i < progress.length; i++) {
        if (progress[i].phase === progress[i - 1].phase) {
          expect(progress[i].done >= progress[i - 1].done, `${name}: done went back`).toBe(true);
          expect(progress[i].total, `${name}: total changed within a phase`).toBe(progress[i - 1].total);
        }
        expect(progress[i].rejected >= progress[i - 1].rejected, `${name}: rejected went back`).toBe(true);
      }
      const reply = (last as { $case: 'reply'; value: wire.QueryReply }).value;
      const units = BigInt(isFast(protocol) ? Math.ceil(f.main.collection.length / G) : f.main.collection.length);
      expect(progress.at(-1), `${name}: the last progress says all settled, with the reply's rejected count`).toEqual({
        phase: wire.QueryPhase[`QUERY_PHASE_${lastPhase.toUpperCase()}` as keyof typeof wire.QueryPhase],
        done: units,
        total: units,
        rejected: rejectedOf(reply),
      });
      const streamed = await answerOf(reply);
      const expected = plaintextNearest(f.main.collection, pixels, k);
      expect(
        streamed.neighbours.map((n) => n.id),
        `${name}: not the plaintext nearest`,
      ).toEqual(expected.map((e) => e.id));
      expect(streamed, `${name}: the streamed answer differs from Query's`).toEqual(unary);
    },
  );

  it('ends the stream with INVALID_ARGUMENT and no events for a query of another size', async () => {
    const { events, error } = await queryWithProgress(paperRequest(await f.wireQuery(randomImage(25), 5, 5)));
    expect(events, 'no progress or reply for a refused query').toEqual([]);
    expect(error, 'a refused query must fail the stream').toBeDefined();
    expectCode(error!, Code.INVALID_ARGUMENT, 'QueryWithProgress 5x5');
    expect(error!.details).toMatch(/5x5/);
  });
});
