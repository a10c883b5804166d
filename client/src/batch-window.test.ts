import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startC1, type RunningC1 } from '@fnn/server-c1';
import { startC2, type RunningC2 } from '@fnn/server-c2';
import { CollectionWriter, INSECURE, localC1Crypto, localC2Crypto, multiExpFixed, plaintextNearest, silentLogger } from '@fnn/shared';
import type { GroupOutcome, PlaintextRecord, PublicKey } from '@fnn/shared';
import { batchQuery, BATCH_WINDOW } from './commands/query';
import { connectC1, connectReplica } from './connect';
import { readImage } from './image-files';
import { grpcOwnerLink } from './owner-upload';
import type { Output } from './output';
import { makeKeys, randomPixels, writeImage, type Keys } from './testing/deployment';

// `fnn batch-query` keeps at most BATCH_WINDOW queries outstanding, because
// each one's share waits at C2 until C1 reaches it and C2 caps what one caller
// may hold there. Here C2's cap is exactly BATCH_WINDOW shares (per caller and
// in all; without TLS every caller is the same one), C1 runs one query at a
// time and holds its first multi-exponentiation at a gate, so nothing settles
// while the batch asks: the batch must stop at BATCH_WINDOW outstanding (the
// running query's share redeemed, the others' held at C2) and, once the gate
// opens, have all three windows of queries answered, exactly. A batch that
// asked them all at once has its next shares refused (RESOURCE_EXHAUSTED)
// while the gate is shut. Both daemons run in this process, so their limits
// are set directly.

const WIDTH = 4;
const HEIGHT = 4;
const RECORDS = 6;
const QUERIES = 3 * BATCH_WINDOW;
const MiB = 1024 * 1024;

let root: string;
let keys: Keys;
let c1: RunningC1;
let c2: RunningC2;
const collection: PlaintextRecord[] = [];

/** Holds C1's multi-exponentiations until opened. */
const gate = (() => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { held: 0, opened, open };
})();

/** Resolves once `holds()` is true, looking every 10 ms (the test's timeout ends a wait that never does). */
async function until(holds: () => boolean): Promise<void> {
  while (!holds()) await new Promise((resolve) => setTimeout(resolve, 10));
}
const clients: { close(): void }[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fnn-batch-window-test-'));
  keys = await makeKeys(join(root, 'keys'));
  const cap = { entries: BATCH_WINDOW, bytes: 64 * MiB };
  c2 = await startC2({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c2.db'),
    crypto: localC2Crypto(keys.sk),
    fast: { sk2: keys.sk, pk1: keys.pk1, multiExp: async (b, e, m) => multiExpFixed(b, e, m) },
    log: silentLogger,
    transport: INSECURE,
    limits: { shares: { perCaller: cap, total: cap } },
  });
  c1 = await startC1({
    listen: '127.0.0.1:0',
    dbPath: join(root, 'c1.db'),
    c2Address: c2.address,
    crypto: localC1Crypto(keys.pk),
    fast: {
      pk2: keys.pk,
      sk1: keys.sk1,
      multiExp: async (b, e, m) => {
        gate.held++;
        await gate.opened;
        return multiExpFixed(b, e, m);
      },
    },
    log: silentLogger,
    transport: INSECURE,
    admission: { running: 1 },
  });
  const db = connectC1(c1.address, INSECURE);
  const replica = connectReplica(c2.address, INSECURE);
  clients.push(db, replica);
  const encrypt = (key: PublicKey) => async (values: bigint[]) => values.map((v) => key.encrypt(v));
  const writer = new CollectionWriter(
    grpcOwnerLink(db, replica),
    { pk2: keys.pk, pk1: keys.pk1, recordKey: keys.recordKey },
    { underPk2: encrypt(keys.pk), underPk1: encrypt(keys.pk1) },
    ['packed'],
  );
  for (let i = 0; i < RECORDS; i++) collection.push({ id: `patient-${i}`, pixels: randomPixels(WIDTH * HEIGHT) });
  const outcomes: GroupOutcome[] = [];
  await writer.upload(
    collection.map((r) => ({ id: r.id, image: { width: WIDTH, height: HEIGHT, maxValue: 255, pixels: r.pixels } })),
    (o) => outcomes.push(o),
  );
  for (const o of outcomes) if (!o.ok) throw o.error;
});

afterAll(async () => {
  gate.open();
  for (const client of clients) client.close();
  await c1?.stop();
  await c2?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('fnn batch-query: at most BATCH_WINDOW queries outstanding', () => {
  it(`answers ${QUERIES} fast queries exactly through a C2 that holds at most ${BATCH_WINDOW} shares of the caller`, async () => {
    const queries = Array.from({ length: QUERIES }, (_, i) => ({
      path: writeImage(join(root, `q${String(i).padStart(2, '0')}.png`), randomPixels(WIDTH * HEIGHT), WIDTH, HEIGHT),
    }));
    const results: Record<string, unknown>[] = [];
    const out: Output = { json: true, result: (object) => results.push(object as Record<string, unknown>), note: () => {} };
    const run = batchQuery(
      out,
      queries.map((q) => q.path),
      { c1: c1.address, c2: c2.address, keys: keys.dir, protocol: 'fast', k: '1', timeout: '300', transport: INSECURE },
    );
    const failures = () => results.filter((r) => 'error' in r).map((r) => `${String(r.query)}: ${String(r.error)}`);
    // The running query is at the gate with its share redeemed; the batch has asked BATCH_WINDOW.
    const full = () => gate.held > 0 && c2.held().shares.entries === BATCH_WINDOW - 1;
    await until(() => full() || failures().length > 0);
    // A batch past its window would ask its next query within milliseconds: give it half a second to show.
    const deadline = Date.now() + 500;
    await until(() => Date.now() > deadline || failures().length > 0 || c2.held().shares.entries > BATCH_WINDOW - 1);
    expect(c2.held().shares.entries, 'shares held at C2 while nothing settles').toBe(BATCH_WINDOW - 1);
    gate.open();
    await run.catch(() => {}); // the failures are in the results; the assertions below name them
    expect(failures(), 'queries refused (a refused share means more than BATCH_WINDOW were outstanding)').toEqual([]);
    const answers = results.filter((r) => 'results' in r) as { query: string; results: { id: string }[] }[];
    expect(answers.length, 'answers').toBe(QUERIES);
    for (const a of answers) {
      const pixels = readImage(a.query).pixels;
      const expected = plaintextNearest(collection, pixels, 1)[0].id;
      expect(a.results[0].id, `${a.query}: the nearest neighbour`).toBe(expected);
    }
    await expect(run, 'the batch exit').resolves.toBeUndefined();
    expect(c2.held().shares.entries, 'shares left at C2').toBe(0);
  });
});
