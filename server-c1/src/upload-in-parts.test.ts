import { Metadata, status as Code, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import type * as wire from '@fnn/proto';
import { uploadParts, type GroupOutcome } from '@fnn/shared';
import { UPLOADS_IN_PARTS } from './database-service';
import {
  databaseStatus,
  expectCode,
  FAST,
  FNN,
  forget,
  randomImage,
  remember,
  RPC_DEADLINE_MS,
  SHAPE,
  useFixture,
  type Fixture,
} from './testing/fixtures';

// Database.UploadInParts on the real daemon: an upload above the message
// limit (the paper's layout at 256x256 and up) arrives as a head and parts of
// values. C1 stores the assembled request as Upload would, in one
// transaction when the stream ends; a stream cut off or short stores nothing;
// and C1 takes only UPLOADS_IN_PARTS such streams at once, since each holds
// its group's bulk in memory until its end.

/** A limit at which every group of the test size goes in many parts. */
const SMALL_LIMIT = 4096;

/** How long C1 waits here for an upload's next part: short, so that a silent owner is seen giving up its place. */
const IDLE_MS = 1500;

let f: Fixture;
useFixture({ uploadPartIdleMs: IDLE_MS }, (started) => (f = started));

/** One UploadInParts stream: its parts written (and the stream ended, unless `end` is false), C1's reply. */
function send(parts: wire.UploadPart[], end = true): { call: ClientWritableStream<wire.UploadPart>; reply: Promise<wire.UploadReply> } {
  let call!: ClientWritableStream<wire.UploadPart>;
  const reply = new Promise<wire.UploadReply>((resolve, reject) => {
    call = f.main.db.uploadInParts(new Metadata(), { deadline: new Date(Date.now() + RPC_DEADLINE_MS) }, (error, r) =>
      error ? reject(error) : resolve(r),
    );
  });
  // C1's refusal reaches the callback; the stream's own error event would otherwise go unheard.
  call.on('error', () => {});
  for (const part of parts) call.write(part);
  if (end) call.end();
  return { call, reply };
}

const refusal = async (reply: Promise<unknown>, what: string): Promise<ServiceError> => {
  try {
    await reply;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error(`${what}: C1 took it`);
};

/** The upload the owner would send for one new record (nothing sent). */
async function capturedUpload(id: string): Promise<wire.UploadRequest> {
  const { uploads } = await f.captureUpload(f.main, [{ id, pixels: randomImage() }]);
  expect(uploads.length, 'one group change for one record').toBe(1);
  return uploads[0];
}

const records = async () => Number((await databaseStatus(f.main.db)).records);

describe('an upload in parts at C1', () => {
  it("the owner's writer uploading every group in parts: stored as in one message, fast and fnn answer exactly", async () => {
    const link = {
      ...f.ownerLink(f.main, { c1: true, c2: true }),
      upload: (req: wire.UploadRequest) => send([...uploadParts(req, SMALL_LIMIT)]).reply,
    };
    const added = [0, 1, 2].map((i) => ({ id: `in-parts-${i}`, pixels: randomImage() }));
    const before = await records();
    const outcomes: GroupOutcome[] = [];
    await f.writerOver(link, f.main.layouts).upload(
      added.map((r) => ({ id: r.id, image: { ...SHAPE, pixels: r.pixels } })),
      (o) => outcomes.push(o),
    );
    expect(
      outcomes.every((o) => o.ok),
      'every group stored',
    ).toBe(true);
    expect(await records()).toBe(before + added.length);
    remember(f.main, added);
    try {
      for (const r of added) await f.expectExactNeighbours(r.pixels, FNN, 1, `an fnn self-query of ${r.id}`);
      await f.expectExactNeighbours(added[1].pixels, FAST, 3, 'a fast query near the records uploaded in parts');
    } finally {
      forget(
        f.main,
        added.map((r) => r.id),
      );
      await f.ownerDelete(
        f.main,
        added.map((r) => r.id),
      );
    }
  });

  it('a stream that goes silent is refused after the idle time (RESOURCE_EXHAUSTED), nothing stored', async () => {
    const parts = [...uploadParts(await capturedUpload('silent'), SMALL_LIMIT)];
    const before = await records();
    const started = Date.now();
    const { call, reply } = send(parts.slice(0, 2), false);
    const error = await refusal(reply, 'a silent upload');
    expectCode(error, Code.RESOURCE_EXHAUSTED, 'an upload in parts gone silent');
    expect(error.details).toBe(`no part of the stream arrived for ${IDLE_MS / 1000} s: its place is given up`);
    expect(Date.now() - started, 'refused after the idle time, not before').toBeGreaterThanOrEqual(IDLE_MS - 50);
    call.end();
    expect(await records(), 'nothing stored').toBe(before);
  });

  it('a stream that ends before its last value stores nothing (INVALID_ARGUMENT)', async () => {
    const parts = [...uploadParts(await capturedUpload('short'), SMALL_LIMIT)];
    const before = await records();
    const error = await refusal(send(parts.slice(0, -1)).reply, 'a short upload');
    expectCode(error, Code.INVALID_ARGUMENT, 'an upload in parts that ends short');
    expect(error.details).toMatch(/^the upload ended after \d+ of the \d+ values its head announced$/);
    expect(await records(), 'nothing stored').toBe(before);
  });

  it(`takes ${UPLOADS_IN_PARTS} streams at once and refuses one more (RESOURCE_EXHAUSTED), then takes the next`, async () => {
    const parts = [...uploadParts(await capturedUpload('held'), SMALL_LIMIT)];
    // One stream more than the cap, each held open after its head as a slow owner would hold it: whichever C1 sees last is refused.
    const held = Array.from({ length: UPLOADS_IN_PARTS + 1 }, () => send(parts.slice(0, 1), false));
    const settled = held.map((h, i) =>
      h.reply.then(
        () => i,
        (error: ServiceError) => ({ i, error }),
      ),
    );
    const first = await Promise.race(settled);
    expect(typeof first, 'a held stream was answered before its end: it can only be a refusal').toBe('object');
    const { i: refusedAt, error } = first as { i: number; error: ServiceError };
    expectCode(error, Code.RESOURCE_EXHAUSTED, 'a stream beyond the cap');
    expect(error.details).toBe(`C1 is taking ${UPLOADS_IN_PARTS} uploads in parts already: try again when one is done`);
    for (const [i, h] of held.entries()) {
      if (i === refusedAt) continue;
      h.call.end();
      expectCode(await refusal(h.reply, 'a held stream ended after its head'), Code.INVALID_ARGUMENT, 'a held stream ended short');
    }
    // The places are free again: a whole stream is taken (and refused only for what it is, a head alone).
    const alone = await refusal(send(parts.slice(0, 1)).reply, 'a head alone');
    expect(alone.details).toMatch(/ended after 0 of/);
  });

  it('a stream the owner cuts off stores nothing, and C1 frees its place', async () => {
    const parts = [...uploadParts(await capturedUpload('cut-off'), SMALL_LIMIT)];
    const before = await records();
    const { call, reply } = send(parts.slice(0, 3), false);
    call.cancel();
    expectCode(await refusal(reply, 'a cancelled upload'), Code.CANCELLED, 'an upload in parts the owner cancelled');
    expect(await records(), 'nothing stored').toBe(before);
    // C1 may not hear of the cancel (grpc-js need not deliver it); it gives the place up when no part comes: all its places take streams again.
    await vi.waitFor(
      async () => {
        const all = await Promise.all(
          Array.from({ length: UPLOADS_IN_PARTS }, () => refusal(send(parts.slice(0, 1)).reply, 'a head alone')),
        );
        for (const e of all) expect(e.details).toMatch(/ended after 0 of/);
      },
      { timeout: 3 * IDLE_MS, interval: 100 },
    );
  });
});
